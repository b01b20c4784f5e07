"""The local exchange: Twilio's edge signaling protocol and a media bridge, on your LAN."""
