"""Sound in and out: ALSA capture and playback as PCM, tones, devices. Knows nothing of calls."""
