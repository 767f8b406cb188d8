"""Wi-Fi/LAN presence: devices heard on the LAN (DHCP, ARP) become taps by their MAC.

Nothing is imported here: the config schema uses ``address`` alone, and the reader's
modules load only when a MAC reader is configured.
"""
