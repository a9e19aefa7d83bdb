ardour {
	["type"]    = "EditorAction",
	name        = "msanii: Inpaint Range",
	license     = "MIT",
	author      = "msanii-daw",
	description = [[Regenerate the selected time range of the selected audio track with a running msanii-osc.
The region's audio around the range (2 s each side by default) goes to the server; the result lands on a new
track at exactly the range's position. The original region and its files are not touched.]]
}

function action_params ()
	return {
		["port"]     = { title = "msanii-osc port (default 9000)", default = "" },
		["context"]  = { title = "Context seconds on each side (default 2)", default = "" },
		["work_dir"] = { title = "Work folder the server may read (default ~/msanii-output/msanii-request)", default = "" },
		["request"]  = { title = "msanii-request command (default: msanii-request on PATH)", default = "" },
	}
end

function factory (params) return function ()
	local msanii = dofile (ARDOUR.LuaAPI.build_filename (ARDOUR.user_config_directory (-1), "scripts", "msanii_lib.lua"))
	msanii.editor_action ("msanii: Inpaint Range", params, function (opts)
		local sel = Editor:get_selection ()
		local route = msanii.selected_track ()
		if route == nil then error ("msanii: select an audio track (and a time range on it) first", 0) end
		return msanii.inpaint_range (Session, route, sel.time:start_sample (), sel.time:end_sample (), opts)
	end)
end end
