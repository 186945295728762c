// Command hallmark-bench measures a running Hallmark server against a running
// peer (the distribution registry) with the same client, the same data and
// the same disk, and prints one table row per measurement: name, Hallmark,
// peer, ratio, target, pass/fail. bench/run.sh starts both servers and
// drives it; scenarios are chosen with -scenario.
package main
