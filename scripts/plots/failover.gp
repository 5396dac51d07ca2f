# scripts/bench-paxos.sh part 2: the failover time of every kill of the
# leader, sorted, as a cumulative distribution. Data columns (sorted by ms):
#   kill_rank fraction_of_kills ms
# Set by the caller: dat, out, machine, p50, p99 (nearest rank, ms), kills, sig (the
# signal: KILL, or STOP for a hung leader whose connections stay open).
set terminal svg size 800,480 dynamic noenhanced font "sans,12"
set output out
# Room on the right for the p99 label; the first step rises from 0 at the
# fastest kill (steps alone would start at its fraction).
stats dat using 3 nooutput  # before any range is set: stats keeps to them
set xrange [0:STATS_max * 1.2]
set arrow 3 from STATS_min, 0 to STATS_min, 1.0 / STATS_records nohead lw 2 lc rgb "#1f77b4"
set title sprintf("Failover after kill -%s of the leader: %d kills, p50 %.0f ms, p99 %.0f ms\n%s", sig, kills, p50, p99, machine)
set xlabel "time from the kill to the first committed Append (ms)"
set ylabel "fraction of kills at most that long"
set yrange [0:1.05]
set grid
set key bottom right
set arrow 1 from p50, graph 0 to p50, graph 1 nohead dt 2 lc rgb "#2ca02c"
set arrow 2 from p99, graph 0 to p99, graph 1 nohead dt 2 lc rgb "#d62728"
set label 1 sprintf(" p50 %.0f ms", p50) at p50, graph 0.92 left tc rgb "#2ca02c"
set label 2 sprintf(" p99 %.0f ms", p99) at p99, graph 0.84 left tc rgb "#d62728"
plot dat using 3:2 with steps lw 2 lc rgb "#1f77b4" title "cumulative fraction", \
     ''  using 3:2 with points pt 7 lc rgb "#1f77b4" notitle
