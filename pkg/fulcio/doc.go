// Package fulcio is the one home of Fulcio's certificate extensions: the
// OIDs of the 1.3.6.1.4.1.57264.1 arc, their names, how the CA renders them
// into a certificate and how verifiers, the indexer and the console read them
// back, including the username otherName SAN. It does no I/O and makes no
// trust decision.
package fulcio
