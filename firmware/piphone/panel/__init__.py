"""The physical front: hook switch, buttons, keypad and LEDs. Knows nothing of Twilio."""
