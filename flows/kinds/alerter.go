package kinds

import (
	"context"
	"fmt"

	"payfuse/channels"
	"payfuse/models"
)

// StoreAlerter raises a flow's final failure in the alert inbox: one alert
// per flow while unresolved (repeats count on it), linked to the run.
type StoreAlerter struct{ Store *models.Store }

// Alert implements flows.Alerter.
func (a StoreAlerter) Alert(_ context.Context, flow *models.Flow, run *models.FlowRun, msg channels.Text) error {
	_, _, err := a.Store.RaiseAlert(models.RaiseInput{
		MerchantCode: flow.MerchantCode, Source: "flow", SourceID: flow.ID, Kind: "flow_failed", Severity: models.SeverityCritical,
		DedupeKey: fmt.Sprintf("flow:%d", flow.ID),
		Title:     channels.Text{EN: fmt.Sprintf("Flow %s failed", flow.Name), ZH: fmt.Sprintf("流程 %s 运行失败", flow.Name)},
		Body: channels.Text{EN: fmt.Sprintf("Run %d (attempt %d): %s", run.ID, run.Attempt, msg.EN),
			ZH: fmt.Sprintf("第 %d 次运行（第 %d 次尝试）：%s", run.ID, run.Attempt, msg.ZH)},
		Link: fmt.Sprintf("/flows/runs/%d", run.ID),
	})
	return err
}
