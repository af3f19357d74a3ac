package daemon

import (
	"github.com/prometheus/client_golang/prometheus"
)

// tokenStats exports the token layer's state to Prometheus at scrape time.
// It reads hsm.Token.Status, which never calls into the module, so a hung
// token cannot hang a scrape.
type tokenStats struct {
	current func() *keyStore
}

var (
	descSessionsInUse = prometheus.NewDesc("wssignd_token_sessions_in_use", "Pooled sessions lent to operations now.", []string{"token"}, nil)
	descSessionsMax   = prometheus.NewDesc("wssignd_token_sessions_max", "Pooled sessions at most.", []string{"token"}, nil)
	descWaiting       = prometheus.NewDesc("wssignd_token_operations_waiting", "Operations waiting for a session.", []string{"token"}, nil)
	descRecoveries    = prometheus.NewDesc("wssignd_token_recoveries_total", "Recoveries that brought the token back online (since it was opened).", []string{"token"}, nil)
	descOverdue       = prometheus.NewDesc("wssignd_token_calls_overdue", "PKCS#11 calls still in the module past their deadline.", []string{"token"}, nil)
	descPINCountLow   = prometheus.NewDesc("wssignd_token_pin_count_low", "1 when the token reported CKF_USER_PIN_COUNT_LOW at the last login.", []string{"token"}, nil)
)

func (c tokenStats) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descSessionsInUse, descSessionsMax, descWaiting, descRecoveries, descOverdue, descPINCountLow} {
		ch <- d
	}
}

func (c tokenStats) Collect(ch chan<- prometheus.Metric) {
	ks := c.current()
	if ks == nil {
		return
	}
	for name, st := range ks.TokenStatus() {
		low := 0.0
		if st.PINCountLow {
			low = 1
		}
		ch <- prometheus.MustNewConstMetric(descSessionsInUse, prometheus.GaugeValue, float64(st.SessionsInUse), name)
		ch <- prometheus.MustNewConstMetric(descSessionsMax, prometheus.GaugeValue, float64(st.SessionsMax), name)
		ch <- prometheus.MustNewConstMetric(descWaiting, prometheus.GaugeValue, float64(st.Waiting), name)
		ch <- prometheus.MustNewConstMetric(descRecoveries, prometheus.CounterValue, float64(st.Recoveries), name)
		ch <- prometheus.MustNewConstMetric(descOverdue, prometheus.GaugeValue, float64(st.Overdue), name)
		ch <- prometheus.MustNewConstMetric(descPINCountLow, prometheus.GaugeValue, low, name)
	}
}
