-- Headless Ardour driver for tests/test_ardour_session.py (run by ardour7-lua / ardour8-lua).
--   create <dir> <name> <rate> <bpm> <clip.pcm> <position>     new session, tempo, the clip on track "take"
--   edit <dir> <name> <work_dir> <port> <action> ...   load, run msanii actions, save
--      actions: inpaint <start> <end> | continue <bars> | generate <at> <bars> | generate-cancel <at> <bars>
-- Prints "MSANII_RESULT <action> key=value ..." or "MSANII_ERROR <action> <message>" per action. The
-- actions are the shared code of examples/ardour/ (msanii_lib.lua), loaded exactly as the editor actions do.

local function start_engine ()
	local backend = AudioEngine:set_backend ("None (Dummy)", "", "")
	assert (backend, "Ardour's dummy backend is missing")
	assert (AudioEngine:start (false) == 0, "the dummy audio engine did not start")
end

local function save (session)
	assert (session:save_state ("", false, false, false, false, false) == 0, "save_state failed")
end

local function report (action, result)
	local src = {}
	for c = 0, result.region:to_audioregion ():n_channels () - 1 do
		src[#src + 1] = result.region:source (c):to_filesource ():path ()
	end
	print (string.format ("MSANII_RESULT %s track=%s position=%d length=%d offset=%d region=%s output=%s sources=%s",
		action, result.track:name (), result.region:position ():samples (), result.region:length ():samples (),
		result.offset, result.region:name (), result.output, table.concat (src, "|")))
end

-- where the editor actions load it from: the installed copy in Ardour's user scripts folder
local function load_lib ()
	return dofile (ARDOUR.LuaAPI.build_filename (ARDOUR.user_config_directory (-1), "scripts", "msanii_lib.lua"))
end

local cmd = arg[1]
start_engine ()
if cmd == "create" then
	local dir, name, rate, bpm, clip, position = arg[2], arg[3], tonumber (arg[4]), tonumber (arg[5]), arg[6], tonumber (arg[7])
	local session = create_session (dir, name, rate)
	assert (session, "create_session failed")
	local tm = Temporal.TempoMap.fetch_writable ()
	tm:set_tempo (Temporal.Tempo (bpm, bpm, 4), Temporal.timepos_t (0))
	Temporal.TempoMap.update (tm)
	local lib = load_lib ()
	local f = assert (io.open (clip, "rb"))
	local _, _, frames = string.unpack ("<c8i4i4", f:read (16))
	f:close ()
	local track, region = lib.place_pcm (session, clip, 0, frames, position, "take")
	report ("create", { track = track, region = region, offset = 0, output = clip })
	print ("MSANII_SUPERCLOCK " .. tostring (Temporal.superclock_ticks_per_second ()))
	save (session)
elseif cmd == "edit" then
	local dir, name, work_dir, port = arg[2], arg[3], arg[4], tonumber (arg[5])
	local session = load_session (dir, name)
	assert (session, "load_session failed")
	local lib = load_lib ()
	local opts = { work_dir = work_dir, port = port, seed = 11 }
	local take = session:route_by_name ("take")
	local i = 6
	while arg[i] do
		local action = arg[i]
		local ok, result
		if action == "inpaint" then
			ok, result = pcall (lib.inpaint_range, session, take, tonumber (arg[i + 1]), tonumber (arg[i + 2]), opts)
			i = i + 3
		elseif action == "continue" then
			local region = nil
			for r in take:to_track ():playlist ():region_list ():iter () do region = region or r end
			ok, result = pcall (lib.continue_region, session, take, region, tonumber (arg[i + 1]), opts)
			i = i + 2
		elseif action == "generate-cancel" then -- as the progress window's Cancel: cancel at the first progress line
			local lines = 0
			local cancelling = { on_progress = function (fraction, line) lines = lines + 1 return fraction ~= nil end }
			for k, v in pairs (opts) do cancelling[k] = v end
			ok, result = pcall (lib.generate_at, session, tonumber (arg[i + 1]), tonumber (arg[i + 2]), cancelling)
			print ("MSANII_PROGRESS_LINES " .. lines)
			i = i + 3
		elseif action == "generate" then
			ok, result = pcall (lib.generate_at, session, tonumber (arg[i + 1]), tonumber (arg[i + 2]), opts)
			i = i + 3
		else
			error ("unknown action " .. action)
		end
		if ok then report (action, result) else print ("MSANII_ERROR " .. action .. " " .. tostring (result)) end
	end
	save (session)
end
close_session ()
