package node

// offlineConfig is DefaultConfig with everything that would reach beyond
// the machine turned off: the base of every test node here (New refuses
// the defaults in tests, see checkNoPublicNetwork).
func offlineConfig() Config {
	cfg := DefaultConfig()
	cfg.Rendezvous = false
	cfg.NATPortMap = false
	return cfg
}
