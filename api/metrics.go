package api

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
)

// Metrics are the daemon's Prometheus metrics. They outlive any one Server,
// so a configuration reload keeps its counters.
type Metrics struct {
	reg        *prometheus.Registry
	requests   *prometheus.CounterVec
	latency    *prometheus.HistogramVec
	keyOps     *prometheus.CounterVec
	keyLatency *prometheus.HistogramVec
	inFlight   prometheus.Gauge
	tokens     *tokenCollector

	// The labelled series of each route and key operation, looked up once
	// (WithLabelValues hashes the labels on every call).
	mu          sync.RWMutex
	routes      map[string]*routeMetrics
	keyOpSeries map[keyOpName]*keyOpSeries
}

// NewMetrics registers the wssignd metrics, plus the Go runtime and process
// collectors, on a registry of its own.
func NewMetrics() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wssignd_requests_total", Help: "HTTP requests by route and status code.",
		}, []string{"route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "wssignd_request_duration_seconds", Help: "HTTP request latency by route.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"route"}),
		keyOps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wssignd_key_operations_total", Help: "Private-key operations by key, operation and outcome.",
		}, []string{"key", "op", "outcome"}),
		keyLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "wssignd_key_operation_duration_seconds", Help: "Latency of private-key requests (XML work included) by key.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"key", "op"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "wssignd_requests_in_flight", Help: "Requests being served.",
		}),
		tokens: &tokenCollector{desc: prometheus.NewDesc("wssignd_token_state",
			"1 for the state each configured token is in.", []string{"token", "state"}, nil)},
	}
	m.routes = map[string]*routeMetrics{}
	m.keyOpSeries = map[keyOpName]*keyOpSeries{}
	m.reg.MustRegister(m.requests, m.latency, m.keyOps, m.keyLatency, m.inFlight, m.tokens,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Registry is where further collectors (e.g. the token layer's) register.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// keySeriesHandler serves only the series with a "key" label whose value
// is in keys: what a caller who is not an administrator may see.
func (m *Metrics) keySeriesHandler(keys map[string]bool) http.Handler {
	g := prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		mfs, err := m.reg.Gather()
		var out []*dto.MetricFamily
		for _, mf := range mfs {
			var kept []*dto.Metric
			for _, mt := range mf.GetMetric() {
				for _, lp := range mt.GetLabel() {
					if lp.GetName() == "key" && keys[lp.GetValue()] {
						kept = append(kept, mt)
						break
					}
				}
			}
			if len(kept) > 0 {
				mf.Metric = kept
				out = append(out, mf)
			}
		}
		return out, err
	})
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{})
}

// SetKeyStore points the token-state collector at ks (the current one after
// a reload).
func (m *Metrics) SetKeyStore(ks KeyStore) {
	m.tokens.ks.Store(&ks)
}

// routeMetrics are one route's series, looked up once: the latency
// histogram and the request counter of each status code (100–599), filled
// in on first use.
type routeMetrics struct {
	m       *Metrics
	route   string
	latency prometheus.Observer
	codes   [500]atomic.Pointer[prometheus.Counter]
}

func (rm *routeMetrics) observe(status int, d time.Duration) {
	rm.counter(status).Inc()
	rm.latency.Observe(d.Seconds())
}

func (rm *routeMetrics) counter(status int) prometheus.Counter {
	if status < 100 || status > 599 {
		return rm.m.requests.WithLabelValues(rm.route, strconv.Itoa(status))
	}
	if c := rm.codes[status-100].Load(); c != nil {
		return *c
	}
	c := rm.m.requests.WithLabelValues(rm.route, strconv.Itoa(status))
	rm.codes[status-100].Store(&c)
	return c
}

// route returns the cached series of route (a bounded label: routeLabel).
func (m *Metrics) route(route string) *routeMetrics {
	m.mu.RLock()
	rm := m.routes[route]
	m.mu.RUnlock()
	if rm != nil {
		return rm
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if rm = m.routes[route]; rm == nil {
		rm = &routeMetrics{m: m, route: route, latency: m.latency.WithLabelValues(route)}
		m.routes[route] = rm
	}
	return rm
}

// keyOpSeries are the series of one key and operation, looked up once;
// an outcome's counter is made on its first use (as WithLabelValues did).
type keyOpSeries struct {
	m        *Metrics
	key, op  string
	outcomes [3]atomic.Pointer[prometheus.Counter] // ok, timeout, error
	latency  prometheus.Observer
}

var keyOpOutcomes = [3]string{"ok", "timeout", "error"}

func (ks *keyOpSeries) counter(i int) prometheus.Counter {
	if c := ks.outcomes[i].Load(); c != nil {
		return *c
	}
	c := ks.m.keyOps.WithLabelValues(ks.key, ks.op, keyOpOutcomes[i])
	ks.outcomes[i].Store(&c)
	return c
}

type keyOpName struct{ key, op string }

func (m *Metrics) keyOp(key, op string) *keyOpSeries {
	k := keyOpName{key, op}
	m.mu.RLock()
	ks := m.keyOpSeries[k]
	m.mu.RUnlock()
	if ks != nil {
		return ks
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if ks = m.keyOpSeries[k]; ks == nil {
		ks = &keyOpSeries{m: m, key: key, op: op, latency: m.keyLatency.WithLabelValues(key, op)}
		m.keyOpSeries[k] = ks
	}
	return ks
}

func (m *Metrics) observeKeyOp(key, op string, err error, d time.Duration) {
	ks := m.keyOp(key, op)
	switch {
	case err == nil:
		ks.counter(0).Inc()
	case outcomeOf(err) == "timeout":
		ks.counter(1).Inc()
	default:
		ks.counter(2).Inc()
	}
	ks.latency.Observe(d.Seconds())
}

// outcomeOf is the outcome label of a failed key operation: "timeout" when
// the request's deadline passed (not the token's fault), else "error".
func outcomeOf(err error) string {
	if isTimeout(err) {
		return "timeout"
	}
	return "error"
}

// tokenCollector reports token states at scrape time, within a bound, so a
// hung token never hangs a scrape.
type tokenCollector struct {
	desc *prometheus.Desc
	ks   atomicKeyStore
}

func (c *tokenCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *tokenCollector) Collect(ch chan<- prometheus.Metric) {
	p := c.ks.Load()
	if p == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	states, _ := (*p).Ready(ctx)
	for tok, st := range states {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, 1, tok, st)
	}
}

type atomicKeyStore = atomic.Pointer[KeyStore]
