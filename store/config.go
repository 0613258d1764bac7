package store

import "github.com/gatewayd/gatewayd/config"

// EventsConfig is the [events] block of gatewayd.toml.
type EventsConfig struct {
	// Retention is how many audit events are kept; the oldest beyond it
	// are dropped as new ones are written.
	Retention int `toml:"retention"`
}

// Defaults sets the [events] defaults.
func (c *EventsConfig) Defaults() { *c = EventsConfig{Retention: DefaultEventRetention} }

// Validate checks the block.
func (c *EventsConfig) Validate() error {
	if c.Retention < 1 {
		return config.Errorf("retention", "must be at least 1, got %d", c.Retention)
	}
	return nil
}
