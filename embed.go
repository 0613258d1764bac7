// Package gatewayd carries the files the binary embeds.
package gatewayd

import _ "embed"

// ExampleConfig is gatewayd.toml.example: the configuration `gatewayd
// serve` runs with when no -config is given.
//
//go:embed gatewayd.toml.example
var ExampleConfig []byte
