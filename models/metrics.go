package models

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics counts what the store and the flow engine decide, for Prometheus:
// ledger rows ingested, notification outcomes and flow run ends. It is a
// prometheus.Collector the server registers in its own registry (several
// registries may hold the same Metrics: two servers over one store share
// its counts). Every method is safe on a nil *Metrics, which counts nothing,
// so the CLI and tests without a server need no metrics.
type Metrics struct {
	ingested      *prometheus.CounterVec
	notifications *prometheus.CounterVec
	flowRuns      *prometheus.CounterVec
}

// Outcomes of a notification besides the refusal reasons (which are the
// channels' and the handler's reason codes: bad_signature, stale_timestamp,
// replayed_nonce, …).
const (
	NotifyAccepted  = "accepted"  // merged into the ledger: a new record or news about one
	NotifyDuplicate = "duplicate" // the ledger had heard exactly this already
)

// Results of an ingested row, as IngestStats counts them.
const (
	ingestInserted  = "inserted"
	ingestMerged    = "merged"
	ingestDuplicate = "duplicate"
)

// NewMetrics makes the counters, at zero. The series that always exist
// (each ingest source and result; accepted and duplicate notifications per
// notifying channel; each flow kind's results) are created up front, so
// rate() sees them from the first scrape.
func NewMetrics() *Metrics {
	m := &Metrics{
		ingested: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "payfuse_ledger_rows_ingested_total",
			Help: "Records merged into the ledger after their transaction committed, by source (statement, notification, merchant) and result (inserted, merged, duplicate).",
		}, []string{"source", "result"}),
		notifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "payfuse_notifications_total",
			Help: "Channel notifications by channel and outcome: accepted, duplicate, or the reason one was refused (bad_signature, stale_timestamp, replayed_nonce, unknown_account, ...).",
		}, []string{"channel", "outcome"}),
		flowRuns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "payfuse_flow_runs_total",
			Help: "Flow runs that ended, by flow kind and result (succeeded, failed, retrying).",
		}, []string{"kind", "result"}),
	}
	for _, src := range []string{SourceStatement, SourceNotification, SourceMerchant} {
		for _, res := range []string{ingestInserted, ingestMerged, ingestDuplicate} {
			m.ingested.WithLabelValues(src, res)
		}
	}
	for _, ch := range []string{"wechat", "alipay"} {
		m.notifications.WithLabelValues(ch, NotifyAccepted)
		m.notifications.WithLabelValues(ch, NotifyDuplicate)
	}
	for _, k := range FlowKinds {
		for _, res := range []string{RunSucceeded, RunFailed, RunRetrying} {
			m.flowRuns.WithLabelValues(k, res)
		}
	}
	return m
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	m.ingested.Describe(ch)
	m.notifications.Describe(ch)
	m.flowRuns.Describe(ch)
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.ingested.Collect(ch)
	m.notifications.Collect(ch)
	m.flowRuns.Collect(ch)
}

// Ingested counts what one committed batch from source did to the ledger.
func (m *Metrics) Ingested(source string, st IngestStats) {
	if m == nil {
		return
	}
	add := func(res string, n int) {
		if n > 0 {
			m.ingested.WithLabelValues(source, res).Add(float64(n))
		}
	}
	add(ingestInserted, st.Inserted)
	add(ingestMerged, st.Merged)
	add(ingestDuplicate, st.Duplicates)
}

// NotificationsTaken counts a committed batch of notifications for one
// account at channel (the account's own, from the database; one record each): its rows as ingested from
// notifications, and each notification as accepted or duplicate.
func (m *Metrics) NotificationsTaken(channel string, st IngestStats) {
	if m == nil {
		return
	}
	m.Ingested(SourceNotification, st)
	if n := st.Inserted + st.Merged; n > 0 {
		m.notifications.WithLabelValues(channel, NotifyAccepted).Add(float64(n))
	}
	if st.Duplicates > 0 {
		m.notifications.WithLabelValues(channel, NotifyDuplicate).Add(float64(st.Duplicates))
	}
}

// NotificationRefused counts a notification refused for reason (a fixed
// code, never text from the request). A channel PayFuse does not know is
// counted as "unknown", so a sender cannot mint label values.
func (m *Metrics) NotificationRefused(channel, reason string) {
	if m == nil {
		return
	}
	m.notifications.WithLabelValues(metricChannel(channel), reason).Inc()
}

// FlowRunEnded counts a run of a flow of kind that ended as result.
func (m *Metrics) FlowRunEnded(kind, result string) {
	if m == nil {
		return
	}
	m.flowRuns.WithLabelValues(kind, result).Inc()
}

func metricChannel(code string) string {
	if _, ok := LookupChannel(code); ok {
		return code
	}
	return "unknown"
}
