ardour {
	["type"]    = "dsp",
	name        = "msanii feed",
	category    = "Utility",
	license     = "MIT",
	author      = "msanii-daw",
	description = [[Plays a clip that a msanii action script put in its shared memory, once, while armed.
Used only for a moment by the msanii actions: Ardour's Lua cannot import a file outside the GUI, so an action
bounces this processor's output on a new track instead (a bit-exact copy in the session's own format).
Shared memory (32-bit words): 0 armed, 1 cursor, 2 frames, 3 channels, 4 size of the first call once armed;
samples from word 16, one channel after
the other.]]
}

local HEADER = 16

function dsp_ioconfig ()
	return { { audio_in = -1, audio_out = -1 } }
end

function dsp_init (rate)
	-- header only until an action allocates room for its clip; reading an unallocated header would crash
	self:shmem ():allocate (HEADER)
	self:shmem ():clear ()
end

function dsp_run (ins, outs, n_samples)
	local shm = self:shmem ()
	for c = 1, #outs do
		ARDOUR.DSP.memset (outs[c], 0, n_samples)
	end
	if shm:atomic_get_int (0) ~= 1 then
		return -- not armed: silence (the track's input is never passed through)
	end
	local pos = shm:atomic_get_int (1)
	if pos == 0 then
		shm:atomic_set_int (4, n_samples) -- the first call's size tells the action who ran it (engine or bounce)
	end
	local frames = shm:atomic_get_int (2)
	local channels = shm:atomic_get_int (3)
	local n = math.max (0, math.min (n_samples, frames - pos))
	if n > 0 then
		for c = 1, math.min (#outs, channels) do
			ARDOUR.DSP.copy_vector (outs[c], shm:to_float (HEADER + (c - 1) * frames + pos), n)
		end
	end
	shm:atomic_set_int (1, pos + n_samples)
end
