-- msanii for Ardour 7/8: what the "msanii ..." editor actions do, in one place. The actions only read the
-- editor's selection and show errors; the headless test (tests/test_ardour_session.py) calls these same
-- functions from ardour7-lua. Load it with `local msanii = dofile (path_of_this_file)`.
--
-- Route of every action: the region's own source files (one per channel) are cut and stacked by
-- `msanii-request` (client side, bit-exact) into a work folder the server may read, the server renders, and
-- msanii-request also writes the result as raw float32 (`--pcm`). Ardour's Lua has no file import outside the
-- GUI, so the result goes onto a NEW track by bouncing the "msanii feed" processor (msanii_feed.lua), which
-- plays those samples once: a session file in the session's own format, placed at the exact sample position.
-- The session's existing files and regions are only read, never changed.
--
-- Every function returns a result table, or raises error (message) with the server's reason; callers pcall.

local M = {}

M.defaults = {
	request = os.getenv ("MSANII_REQUEST") or "msanii-request", -- command (set a full path if Ardour's PATH lacks it)
	host = "127.0.0.1",
	port = 9000,
	timeout = 5, -- seconds for the server to answer
	work_dir = (os.getenv ("HOME") or "/tmp") .. "/msanii-output/msanii-request", -- must be readable by the server
	context = 2.0, -- seconds of audio on each side of an inpainted range (when the region has them)
	outpaint_context = 10.0, -- seconds at the end of a region handed over for a continuation
	seed = nil, -- nil: random
}

local FEED = "msanii feed"
local PCM_HEADER = 24

local function options (opts)
	local o = {}
	for k, v in pairs (M.defaults) do o[k] = v end
	for k, v in pairs (opts or {}) do o[k] = v end
	return o
end

local function fail (text)
	error ("msanii: " .. text, 0)
end

-- POSIX shell quoting: paths come from the session and the user and may hold spaces or quotes.
local function q (text)
	return "'" .. tostring (text):gsub ("'", "'\"'\"'") .. "'"
end

local function job_id (verb)
	math.randomseed (os.time () + math.floor (os.clock () * 1e6))
	return string.format ("ardour-%s-%s-%04d", verb, os.date ("!%Y%m%d%H%M%S"), math.random (0, 9999))
end

local function read_all (path)
	local f = io.open (path, "rb")
	if not f then return "" end
	local text = f:read ("a")
	f:close ()
	return text
end

-- The last line of msanii-request's stderr that is not progress: its one-line reason.
local function reason_of (stderr)
	local last = nil
	for line in stderr:gmatch ("[^\n]+") do
		if not line:match ("^msanii%-request: progress") and not line:match ("^msanii%-request: accepted") then
			last = line
		end
	end
	return last and last:gsub ("^msanii%-request: ", "") or nil
end

local function base_words (o, verb)
	return { o.request, verb, "--host", q (o.host), "--port", tostring (o.port), "--timeout", tostring (o.timeout) }
end

-- Run msanii-request (blocking); returns the rendered file's path. `args` is a list of already-quoted words.
-- `o.on_progress (fraction or nil, line)` (optional) sees each stderr line; returning true cancels the job.
function M.request (verb, args, o)
	local words = base_words (o, verb)
	for _, a in ipairs (args) do words[#words + 1] = a end
	if o.seed ~= nil then words[#words + 1] = "--seed " .. tostring (math.floor (o.seed)) end
	local outfile = os.tmpname ()
	-- stderr (progress, the reason) comes through the pipe line by line; stdout (the path) goes to a file
	local pipe = io.popen (table.concat (words, " ") .. " 2>&1 >" .. q (outfile))
	local stderr, cancelled = {}, false
	for line in pipe:lines () do
		stderr[#stderr + 1] = line
		if o.on_progress and not cancelled then
			local percent = line:match ("progress (%d+)%%")
			if o.on_progress (percent and tonumber (percent) / 100 or nil, line) then
				cancelled = true
				local id = table.concat (args, " "):match ("%-%-id '([^']+)'")
				if id then
					local cancel = base_words (o, "cancel")
					cancel[#cancel + 1] = q (id)
					os.execute (table.concat (cancel, " ") .. " >/dev/null 2>&1 &")
				end
			end
		end
	end
	local _, _, code = pipe:close ()
	local stdout = read_all (outfile)
	os.remove (outfile)
	if code == 0 then
		local path = stdout:match ("([^\n]+)")
		if path then return path end
		fail ("msanii-request printed no file path")
	end
	if code == 127 then
		fail ("cannot run '" .. o.request .. "' (not found): install msanii-daw or set MSANII_REQUEST to its full path")
	end
	fail (reason_of (table.concat (stderr, "\n")) or ("msanii-request exited with code " .. tostring (code)))
end

-- Frames [first, first + count) of an MSPCM1 file into a fresh "msanii feed" processor's shared memory.
local function load_pcm (session, pcm, first, count)
	local f = io.open (pcm, "rb")
	if not f then fail ("the rendered clip's PCM copy is missing: " .. pcm) end
	local magic, channels, frames, rate = string.unpack ("<c8i4i4i4", f:read (PCM_HEADER))
	if magic ~= "MSPCM1\0\0" then f:close () fail (pcm .. " is not an MSPCM1 file") end
	if rate ~= session:nominal_sample_rate () then
		f:close ()
		fail (string.format ("the clip is at %d Hz, the session at %d Hz", rate, session:nominal_sample_rate ()))
	end
	local proc = ARDOUR.LuaAPI.new_luaproc (session, FEED)
	if proc:isnil () then
		f:close ()
		fail ("the '" .. FEED .. "' processor is not installed: copy msanii_feed.lua into Ardour's scripts folder")
	end
	local shm = proc:to_insert ():plugin (0):to_luaproc ():shmem ()
	shm:allocate (16 + channels * count)
	shm:clear ()
	local chunk = 8192
	for c = 1, channels do
		local done = 0
		while done < count do
			local n = math.min (chunk, count - done)
			local have = math.max (0, math.min (n, frames - first - done)) -- past the clip's end: silence
			if have > 0 then
				f:seek ("set", PCM_HEADER + 4 * ((c - 1) * frames + first + done))
				local values = { string.unpack ("<" .. string.rep ("f", have), f:read (4 * have)) }
				values[#values] = nil -- string.unpack's last result is the next position
				shm:to_float (16 + (c - 1) * count + done):set_table (values, have)
			end
			done = done + n
		end
	end
	f:close ()
	shm:atomic_set_int (2, count)
	shm:atomic_set_int (3, channels)
	return proc, shm, channels
end

-- Put frames [first, first + count) of an MSPCM1 file on a new track at sample `position`; returns track, region.
function M.place_pcm (session, pcm, first, count, position, track_name)
	local proc, shm, channels = load_pcm (session, pcm, first, count)
	local tracks = session:new_audio_track (channels, channels, nil, 1, track_name,
		ARDOUR.PresentationInfo.max_order, ARDOUR.TrackMode.Normal, true)
	if tracks:size () ~= 1 then fail ("Ardour could not create the track '" .. track_name .. "'") end
	local route = tracks:front ()
	local track = route:to_track ()
	if route:add_processor_by_index (proc, 0, nil, true) ~= 0 then
		fail ("Ardour refused the '" .. FEED .. "' processor on the new track")
	end
	local region = nil
	-- The engine may run the armed processor for a cycle before the bounce blocks processing: a bounce that did
	-- not read exactly `count` samples from the start is redone (the check is what makes the copy exact).
	-- The engine's own cycles call with its block size, the bounce with its much larger chunks: a first call of the
	-- block size means the engine ran the armed feed before the bounce took over, shifting the copy; redo it.
	local block = session:get_block_size ()
	for _ = 1, 5 do
		shm:atomic_set_int (4, 0)
		shm:atomic_set_int (1, 0)
		shm:atomic_set_int (0, 1)
		-- endpoint: the fader, excluded. A new track's fader still ramps up from silence for ~0.1 s (declick), so
		-- taking the signal after it would fade the clip in; the feed sits before it.
		region = track:bounce_range (position, position + count, ARDOUR.InterThreadInfo (), route:amp (), false,
			track_name)
		shm:atomic_set_int (0, 0)
		local read = shm:atomic_get_int (1)
		local first_call = shm:atomic_get_int (4)
		local started_clean = first_call ~= block or count <= block
		if not region:isnil () and started_clean and read >= count and read - count < 8192 then break end
		region = nil
	end
	route:remove_processor (proc, nil, true)
	if region == nil then fail ("Ardour's bounce of the rendered clip did not complete") end
	local playlist = track:playlist ()
	session:begin_reversible_command ("msanii: " .. track_name)
	playlist:to_stateful ():clear_changes ()
	playlist:add_region (region, Temporal.timepos_t (position), 1, false)
	session:add_stateful_diff_command (playlist:to_statefuldestructible ())
	session:commit_reversible_command (nil)
	-- the playlist holds its own copy of the bounced (whole-file) region: report that one
	local placed = nil
	for r in playlist:region_list ():iter () do placed = r end
	if placed == nil or placed:position ():samples () ~= position then
		fail ("Ardour did not place the rendered region at sample " .. tostring (position))
	end
	return track, placed
end

-- The topmost region of `route` that covers samples [s, e) whole.
function M.region_covering (route, s, e)
	local track = route:to_track ()
	if track:isnil () then fail ("'" .. route:name () .. "' is not an audio track") end
	local best = nil
	for r in track:playlist ():regions_touched (Temporal.timepos_t (s), Temporal.timepos_t (e)):iter () do
		local p = r:position ():samples ()
		if p <= s and p + r:length ():samples () >= e and (best == nil or r:layer () > best:layer ()) then
			best = r
		end
	end
	if best == nil then fail ("the range must lie inside one region of '" .. route:name () .. "'") end
	if best:to_audioregion ():isnil () then fail ("the region under the range is not audio") end
	return best
end

-- `--in` words for a region's source files (one per channel) and where samples [s, e) lie in them.
local function region_inputs (region)
	local words = {}
	for c = 0, region:to_audioregion ():n_channels () - 1 do
		local fs = region:source (c):to_filesource ()
		if fs:isnil () then fail ("the region's audio is not in a file") end
		words[#words + 1] = "--in " .. q (fs:path ())
	end
	return words
end

local function span_words (region, s, e, o, verb, id)
	local offset = region:start ():samples () - region:position ():samples () -- timeline -> source sample
	local words = region_inputs (region)
	words[#words + 1] = string.format ("--span %d:%d", s + offset, e + offset)
	for _, w in ipairs ({ "--work-dir", q (o.work_dir), "--id", q (id), "--pcm", q (o.work_dir .. "/" .. id .. ".pcm") }) do
		words[#words + 1] = w
	end
	return words
end

-- Inpaint samples [s, e) of `route`: the result goes on a new track at exactly `s`; returns a result table.
function M.inpaint_range (session, route, s, e, opts)
	local o = options (opts)
	if e <= s then fail ("select a time range first") end
	local region = M.region_covering (route, s, e)
	local rate = session:nominal_sample_rate ()
	local rs = region:position ():samples ()
	local re = rs + region:length ():samples ()
	local ctx = math.floor (o.context * rate)
	local before, after = math.min (ctx, s - rs), math.min (ctx, re - e) -- context only from the region itself
	local id = job_id ("inpaint")
	local words = span_words (region, s - before, e + after, o, "inpaint", id)
	words[#words + 1] = string.format ("--region %.9f-%.9f", before / rate, (before + e - s) / rate)
	local output = M.request ("inpaint", words, o)
	local pcm = o.work_dir .. "/" .. id .. ".pcm"
	local track, placed = M.place_pcm (session, pcm, before, e - s, s, route:name () .. " msanii inpaint")
	os.remove (pcm) -- the session now has its own copy
	return { output = output, track = track, region = placed, position = s, length = e - s, offset = before, id = id }
end

-- Samples in `bars` bars of the session's tempo map, counted from sample `at`.
function M.bars_to_samples (at, bars)
	local tm = Temporal.TempoMap.read ()
	local n = tm:bbt_duration_at (Temporal.timepos_t (at), Temporal.BBT_Offset (math.floor (bars), 0, 0)):samples ()
	if n <= 0 then fail ("the tempo map gives no length for " .. tostring (bars) .. " bars") end
	return n
end

-- Continue `region` of `route` to the right by `bars` bars (tempo map at its end); the new audio goes on a new
-- track right after the region's end.
function M.continue_region (session, route, region, bars, opts)
	local o = options (opts)
	local rate = session:nominal_sample_rate ()
	local rs = region:position ():samples ()
	local re = rs + region:length ():samples ()
	local n = M.bars_to_samples (re, bars)
	local keep = math.min (region:length ():samples (), math.floor (o.outpaint_context * rate))
	local id = job_id ("continue")
	local words = span_words (region, re - keep, re, o, "outpaint", id)
	words[#words + 1] = string.format ("--right %.9f", n / rate)
	local output = M.request ("outpaint", words, o)
	local pcm = o.work_dir .. "/" .. id .. ".pcm"
	local track, placed = M.place_pcm (session, pcm, keep, n, re, route:name () .. " msanii continue")
	os.remove (pcm)
	return { output = output, track = track, region = placed, position = re, length = n, offset = keep, id = id }
end

-- Generate `bars` bars (session tempo) onto a new track at sample `at` (the playhead).
function M.generate_at (session, at, bars, opts)
	local o = options (opts)
	local rate = session:nominal_sample_rate ()
	local n = M.bars_to_samples (at, bars)
	local id = job_id ("generate")
	local pcm = o.work_dir .. "/" .. id .. ".pcm"
	local output = M.request ("generate", { "--seconds", string.format ("%.9f", n / rate), "--id", q (id),
		"--pcm", q (pcm), "--pcm-rate", tostring (rate) }, o)
	local track, placed = M.place_pcm (session, pcm, 0, n, at, "msanii generate")
	os.remove (pcm)
	return { output = output, track = track, region = placed, position = at, length = n, offset = 0, id = id }
end

-- ---- editor glue (GUI only: Editor, LuaDialog) ----------------------------------------------------------------

-- Options from an action's parameters (strings; "" keeps the default).
function M.options_from_params (params)
	local o = {}
	for key, value in pairs (params or {}) do
		if value ~= nil and value ~= "" then
			o[key] = (key == "port" or key == "timeout" or key == "context" or key == "seed") and tonumber (value) or value
		end
	end
	return o
end

-- Run `body (opts)` with a progress window (its Cancel cancels the job on the server) and show any failure,
-- with the server's reason, in a message: never a silent no-op.
function M.editor_action (title, params, body)
	local o = M.options_from_params (params)
	local pw = LuaDialog.ProgressWindow (title, true)
	o.on_progress = function (fraction, line)
		return pw:progress (fraction or 0, line:gsub ("^msanii%-request: ", ""))
	end
	local ok, result = pcall (body, o)
	pw:done ()
	if not ok then
		LuaDialog.Message (title, tostring (result), LuaDialog.MessageType.Error, LuaDialog.ButtonType.Close):run ()
		return nil
	end
	print (string.format ("%s: %s -> track '%s' at sample %d", title, result.output, result.track:name (), result.position))
	return result
end

-- The first selected audio track (route) of the editor, or nil.
function M.selected_track ()
	for route in Editor:get_selection ().tracks:routelist ():iter () do
		local track = route:to_track ()
		if not track:isnil () and not track:to_audio_track ():isnil () then return route end
	end
	return nil
end

-- The route whose playlist holds `region` (Ardour has no direct way from a region to its track).
function M.route_of_region (session, region)
	for route in session:get_tracks ():iter () do
		if not route:to_track ():playlist ():region_by_id (region:to_stateful ():id ()):isnil () then return route end
	end
	return nil
end

return M
