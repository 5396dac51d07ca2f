# A sweep of scripts/bench.sh: one line per replica count, concurrency on a
# log-scale x axis. The data file has one block per replica count (blocks
# separated by two blank lines), each opening with its title in quotes:
#   replicas concurrency committed_per_s p50_ms p99_ms cpu_us_per_txn
# Set by the caller (gnuplot -e): dat, out, machine (cores and date),
# col (the column to draw), ylabel, what (the title's first words).
set terminal svg size 800,480 dynamic noenhanced font "sans,12"
set output out
set title sprintf("%s\n%s", what, machine)
set xlabel "concurrency (transactions in flight, log scale)"
set ylabel ylabel
set logscale x 2
set xtics (1, 4, 16, 64, 256)
set xrange [0.8:320]
set yrange [0:*]
set grid
set key top left
plot for [i=0:*] dat index i using 2:col with linespoints lw 2 pt 7 title columnheader(1)
