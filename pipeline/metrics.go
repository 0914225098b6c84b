package pipeline

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are vigil's self-metrics. They outlive config reloads, so they are
// created once per process and shared by every component built from every
// config. Names follow Promtail's promtail_* metrics where the meaning is
// the same, so existing dashboards and alerts keep working.
type Metrics struct {
	// File source, labelled by path.
	ReadLines   *prometheus.CounterVec // promtail_read_lines_total
	ReadBytes   *prometheus.GaugeVec   // promtail_read_bytes_total: the read position
	FileBytes   *prometheus.GaugeVec   // promtail_file_bytes_total: the file size
	FileLag     *prometheus.GaugeVec   // vigil_file_lag_bytes: size minus committed position
	FilesActive prometheus.Gauge       // promtail_files_active_total
	Truncated   *prometheus.CounterVec // vigil_lines_truncated_total{source}

	// Sinks, labelled by host (the push URL's host) as Promtail does.
	EncodedBytes    *prometheus.CounterVec   // promtail_encoded_bytes_total
	SentBytes       *prometheus.CounterVec   // promtail_sent_bytes_total
	SentEntries     *prometheus.CounterVec   // promtail_sent_entries_total
	DroppedBytes    *prometheus.CounterVec   // promtail_dropped_bytes_total{host,reason,tenant}
	DroppedEntries  *prometheus.CounterVec   // promtail_dropped_entries_total{host,reason,tenant}
	RequestDuration *prometheus.HistogramVec // promtail_request_duration_seconds{status_code,host}
	BatchRetries    *prometheus.CounterVec   // promtail_batch_retries_total{host,tenant}

	// Pipeline-wide.
	Dropped        *prometheus.CounterVec // vigil_dropped_entries_total{component,reason}
	StageErrors    *prometheus.CounterVec // vigil_processor_errors_total{component,reason}
	BufferBytes    prometheus.Gauge       // vigil_buffer_bytes
	BufferTenant   *prometheus.GaugeVec   // vigil_buffer_tenant_bytes{tenant}
	BufferCapacity prometheus.Gauge       // vigil_buffer_capacity_bytes
	ReloadSuccess  prometheus.Counter     // promtail_config_reload_success_total
	ReloadFail     prometheus.Counter     // promtail_config_reload_fail_total
	ConfigOK       prometheus.Gauge       // vigil_config_last_reload_successful
}

// NewMetrics creates the self-metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		ReadLines: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "promtail_read_lines_total", Help: "Number of lines read.",
		}, []string{"path"}),
		ReadBytes: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "promtail_read_bytes_total", Help: "Number of bytes read.",
		}, []string{"path"}),
		FileBytes: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "promtail_file_bytes_total", Help: "Number of bytes total.",
		}, []string{"path"}),
		FileLag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "vigil_file_lag_bytes", Help: "Bytes between a file's size and its saved position: what is read but not yet delivered, or not yet read.",
		}, []string{"path"}),
		FilesActive: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "promtail_files_active_total", Help: "Number of active files.",
		}),
		Truncated: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_lines_truncated_total", Help: "Lines longer than the configured maximum, truncated.",
		}, []string{"source"}),
		EncodedBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "promtail_encoded_bytes_total", Help: "Number of bytes encoded and ready to send.",
		}, []string{"host"}),
		SentBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "promtail_sent_bytes_total", Help: "Number of bytes sent.",
		}, []string{"host"}),
		SentEntries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "promtail_sent_entries_total", Help: "Number of log entries sent to the ingester.",
		}, []string{"host"}),
		DroppedBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "promtail_dropped_bytes_total", Help: "Number of bytes dropped because failed to be sent to the ingester after all retries.",
		}, []string{"host", "reason", "tenant"}),
		DroppedEntries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "promtail_dropped_entries_total", Help: "Number of log entries dropped because failed to be sent to the ingester after all retries.",
		}, []string{"host", "reason", "tenant"}),
		RequestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "promtail_request_duration_seconds", Help: "Duration of send requests.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"status_code", "host"}),
		BatchRetries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "promtail_batch_retries_total", Help: "Number of times batches has had to be retried.",
		}, []string{"host", "tenant"}),
		Dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_dropped_entries_total", Help: "Entries dropped inside the pipeline, by component and reason.",
		}, []string{"component", "reason"}),
		StageErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_processor_errors_total", Help: "Entries a processor could not process (malformed input, failed parse); they pass on unchanged.",
		}, []string{"component", "reason"}),
		BufferBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vigil_buffer_bytes", Help: "Bytes read and not yet settled by every sink.",
		}),
		BufferTenant: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "vigil_buffer_tenant_bytes",
			Help: "Bytes of a tenant read and not yet settled by every sink. A tenant may hold at most half of what the other tenants leave free; its sources wait at that share.",
		}, []string{"tenant"}),
		BufferCapacity: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vigil_buffer_capacity_bytes", Help: "The memory budget for unsettled entries; sources wait when it is full.",
		}),
		ReloadSuccess: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "promtail_config_reload_success_total", Help: "Number of reload success times.",
		}),
		ReloadFail: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "promtail_config_reload_fail_total", Help: "Number of reload fail times.",
		}),
		ConfigOK: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vigil_config_last_reload_successful", Help: "Whether the last configuration reload attempt was successful.",
		}),
	}
	reg.MustRegister(m.ReadLines, m.ReadBytes, m.FileBytes, m.FileLag, m.FilesActive, m.Truncated,
		m.EncodedBytes, m.SentBytes, m.SentEntries, m.DroppedBytes, m.DroppedEntries,
		m.RequestDuration, m.BatchRetries, m.Dropped, m.StageErrors, m.BufferBytes, m.BufferTenant, m.BufferCapacity,
		m.ReloadSuccess, m.ReloadFail, m.ConfigOK)
	return m
}

// NewTestMetrics returns metrics on a private registry, for tests.
func NewTestMetrics() *Metrics { return NewMetrics(prometheus.NewRegistry()) }
