# plot.gp - loss and accuracy curves of a lenet5 run from its CSV log
# (epoch,train_loss,test_acc,seconds), side by side in one PNG.
#   gnuplot -e "csv='build/lenet5.csv'; png='build/lenet5.png'" scripts/plot.gp
if (!exists("csv")) csv = 'build/lenet5.csv'
if (!exists("png")) png = 'build/lenet5.png'

set datafile separator ','
set terminal pngcairo size 1100,420 font ',10' noenhanced
set output png
set key top right
set grid
set xlabel 'epoch'
set xtics 1
set multiplot layout 1,2 title 'LeNet-5 on Fashion-MNIST (tapegrad): '.csv

set title 'training loss (mean cross-entropy)'
set ylabel 'loss'
plot csv every ::1 using 1:2 with linespoints lw 2 pt 7 title 'train loss'

set title 'test accuracy'
set key bottom right
set ylabel 'accuracy'
set format y '%.3f'
plot csv every ::1 using 1:3 with linespoints lw 2 pt 7 lc rgb '#c0392b' title 'test accuracy'

unset multiplot
set output
