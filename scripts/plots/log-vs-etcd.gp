# scripts/bench-paxos.sh part 1: txcoord's replicated log against etcd, bars
# per concurrency, commands/s on the left, p99 on the right. Data columns:
#   concurrency txcoord_per_s txcoord_p99_ms etcd_per_s etcd_p99_ms
# ("?" where a run failed). Set by the caller: dat, out, machine, secs, record.
set terminal svg size 800,480 dynamic noenhanced font "sans,12"
set output out
set datafile missing "?"
set multiplot layout 1,2 title sprintf("Replicated log, 3 replicas/members: txbench log, %s s per bar, %s-byte records\n%s", secs, record, machine)
set style fill solid 0.8 border -1
set boxwidth 0.35
set grid ytics
set key top left
set xlabel "concurrency"
stats dat using 1 nooutput
set xrange [-0.6:STATS_records - 0.4]
set offsets 0, 0, graph 0.12, 0
set yrange [0:*]
set ylabel "committed commands/s"
set title "throughput"
plot dat using ($0-0.18):2:xtic(1) with boxes lc rgb "#1f77b4" title "txcoord", \
     ''  using ($0+0.18):4 with boxes lc rgb "#ff7f0e" title "etcd", \
     ''  using ($0-0.18):2:(sprintf("%.0f", $2)) with labels offset 0,0.7 notitle, \
     ''  using ($0+0.18):4:(sprintf("%.0f", $4)) with labels offset 0,0.7 notitle
set ylabel "p99 latency (ms)"
set title "p99 latency"
plot dat using ($0-0.18):3:xtic(1) with boxes lc rgb "#1f77b4" title "txcoord", \
     ''  using ($0+0.18):5 with boxes lc rgb "#ff7f0e" title "etcd", \
     ''  using ($0-0.18):3:(sprintf("%.1f", $3)) with labels offset 0,0.7 notitle, \
     ''  using ($0+0.18):5:(sprintf("%.1f", $5)) with labels offset 0,0.7 notitle
unset multiplot
