package netsim

import "context"

// Churn is filled in below.
type Churn struct{}

// DefaultChurn is the churn experiment's defaults.
func DefaultChurn() Churn { return Churn{} }

func (ec ExperimentConfig) runChurn(ctx context.Context) error { return nil }
