package flows

import "payfuse/models"

// countRun counts the end of a run of flow as status in the store's metrics,
// once FinishRun has recorded it (err == nil): a run another engine ended
// first (models.ErrRunLost) is that engine's to count.
func (e *Engine) countRun(flow *models.Flow, status string, err error) {
	if err == nil {
		e.Store.Metrics.FlowRunEnded(flow.Kind, status)
	}
}
