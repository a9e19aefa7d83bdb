ardour {
	["type"]    = "EditorAction",
	name        = "msanii: Generate at Playhead",
	license     = "MIT",
	author      = "msanii-daw",
	description = [[Generate N bars (at the session's tempo map) with a running msanii-osc onto a new track,
starting at the playhead.]]
}

function action_params ()
	return {
		["port"]     = { title = "msanii-osc port (default 9000)", default = "" },
		["work_dir"] = { title = "Work folder the server may read (default ~/msanii-output/msanii-request)", default = "" },
		["request"]  = { title = "msanii-request command (default: msanii-request on PATH)", default = "" },
	}
end

function factory (params) return function ()
	local msanii = dofile (ARDOUR.LuaAPI.build_filename (ARDOUR.user_config_directory (-1), "scripts", "msanii_lib.lua"))
	local ask = LuaDialog.Dialog ("msanii: Generate at Playhead", {
		{ type = "number", key = "bars", title = "Bars", min = 1, max = 64, step = 1, digits = 0, default = 4 },
		{ type = "number", key = "seed", title = "Seed (-1 = random)", min = -1, max = 2147483647, step = 1, digits = 0, default = -1 },
	}):run ()
	if not ask then return end
	msanii.editor_action ("msanii: Generate at Playhead", params, function (opts)
		if ask["seed"] >= 0 then opts.seed = ask["seed"] end
		return msanii.generate_at (Session, Session:transport_sample (), ask["bars"], opts)
	end)
end end
