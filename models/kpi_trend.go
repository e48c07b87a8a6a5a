package models

// ScorePoint is the fused score of one business date: the weighted mean of
// the channel accounts' scores under the active weights, nil when no
// account had traffic that day.
type ScorePoint struct {
	Date  string   `json:"date"`
	Fused *float64 `json:"fused"`
}

// ScoreTrend scores each business date from..to (inclusive) on its own from
// the daily rollups, with the weights active for the merchant (the global
// default when merchant is "" — all merchants in scope). It is the same
// scoring the KPI page and `payfuse kpi` use, one day at a time.
func (s *Store) ScoreTrend(scope Scope, merchant, from, to string) ([]ScorePoint, error) {
	return s.scoreTrend(scope, merchant, from, to)
}
