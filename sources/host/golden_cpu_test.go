package host

import "testing"

func TestGoldenCPU(t *testing.T) {
	checkGolden(t, "cpu",
		"node_cpu_seconds_total", "node_cpu_guest_seconds_total", "node_cpu_info",
		"node_cpu_frequency_hertz", "node_cpu_flag_info", "node_cpu_bug_info",
		"node_cpu_isolated", "node_cpu_core_throttles_total", "node_cpu_package_throttles_total")
}

func TestGoldenStat(t *testing.T) {
	checkGolden(t, "stat", "node_boot_time_seconds", "node_context_switches_total", "node_forks_total",
		"node_intr_total", "node_procs_blocked", "node_procs_running", "node_softirqs_total")
}

func TestGoldenLoadavg(t *testing.T) {
	checkGolden(t, "loadavg", "node_load1", "node_load5", "node_load15")
}

func TestGoldenMeminfo(t *testing.T) { checkGolden(t, "meminfo") }

func TestGoldenVmstat(t *testing.T) {
	checkGolden(t, "vmstat", "node_vmstat_oom_kill", "node_vmstat_pgfault", "node_vmstat_pgmajfault",
		"node_vmstat_pgpgin", "node_vmstat_pgpgout", "node_vmstat_pswpin", "node_vmstat_pswpout")
}
