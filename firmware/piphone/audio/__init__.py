"""Sound in and out: ALSA capture and playback, tones, levels, devices. Knows nothing of calls."""
