ardour {
	["type"]    = "EditorAction",
	name        = "msanii: Continue Region",
	license     = "MIT",
	author      = "msanii-daw",
	description = [[Continue the selected audio region to the right by N bars of the session's tempo map
(outpaint with a running msanii-osc). The continuation lands on a new track right at the region's end.]]
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
	local ask = LuaDialog.Dialog ("msanii: Continue Region", {
		{ type = "number", key = "bars", title = "Bars", min = 1, max = 64, step = 1, digits = 0, default = 4 },
		{ type = "number", key = "seed", title = "Seed (-1 = random)", min = -1, max = 2147483647, step = 1, digits = 0, default = -1 },
	}):run ()
	if not ask then return end
	msanii.editor_action ("msanii: Continue Region", params, function (opts)
		if ask["seed"] >= 0 then opts.seed = ask["seed"] end
		local region = nil
		for r in Editor:get_selection ().regions:regionlist ():iter () do region = region or r end
		if region == nil then error ("msanii: select the audio region to continue first", 0) end
		local route = msanii.route_of_region (Session, region)
		if route == nil then error ("msanii: the selected region is on no track", 0) end
		return msanii.continue_region (Session, route, region, ask["bars"], opts)
	end)
end end
