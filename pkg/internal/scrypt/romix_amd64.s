//go:build !purego

#include "textflag.h"

// ROMix for scrypt with r = 8: 1 KiB blocks, 16 Salsa20/8 cores per
// BlockMix. With p = 1 the whole derivation is one dependency chain of
// Salsa20 steps (add, rotate, xor), so what counts is the latency of that
// chain. Scalar integer instructions have one-cycle latency on current x86
// cores, while vector ones have two on some (AMD Zen 5), so this is scalar
// code that keeps as much of the state as it can in registers.
//
// There are 15 usable general registers for 16 state words and one
// temporary. The words x2 and x7 live in stack slots and are used through
// memory operands: stores to and loads from the same stack slot are renamed
// like registers on current cores (no store-to-load latency), so that costs
// an instruction here and there, not time. The round is written step by
// step across all four quarter-rounds so that they run side by side.
//
// Registers: W<k> holds word x<k>, C1 and C2 hold x8 and x13 (the "c"
// operands of the quarter-rounds that are not in memory), T is the step
// temporary and, between Salsa20 cores, the pointer register. BP is used as
// T: the frame is not empty, so the assembler saves and restores it around
// the body; R14 and R15 are free in ABI0 code (the wrapper that calls it
// from Go restores g in R14).
//
// Frame (hardware SP offsets):
//   0 x2, 4 x7                    state words not in registers
//   16..79                        the Salsa20 input, for the feed-forward
//   80 in pointer, 88 out pointer, 96 block-pair counter (BLOCKMIX)
//   104.. the callers' loop state (144: the block of v BLOCKMIXV reads)

#define W0 AX
#define W1 BX
#define W3 CX
#define W4 DX
#define W5 SI
#define W6 DI
#define W9 R8
#define W10 R9
#define W11 R10
#define W12 R11
#define W14 R12
#define W15 R13
#define C1 R14
#define C2 R15
#define T BP

#define M2 0(SP)
#define M7 4(SP)

// STEP: b ^= (a + d) <<< k, for a and d in registers. (MOV+ADD rather
// than LEA: the register move is free at rename, and the two-operand LEA
// competes for fewer execution ports; on Zen 5 it makes a round 7% slower.)
#define STEP(a, d, b, k) \
	MOVL a, T; \
	ADDL d, T; \
	ROLL $k, T; \
	XORL T, b

// STEPM: b ^= (m + d) <<< k, for m in memory.
#define STEPM(m, d, b, k) \
	MOVL m, T; \
	ADDL d, T; \
	ROLL $k, T; \
	XORL T, b

// DOUBLEROUND: a column round and a row round, each as four steps of the
// four quarter-rounds.
#define DOUBLEROUND \
	STEP(W0, W12, W4, 7); STEP(W5, W1, W9, 7); STEP(W10, W6, W14, 7); STEP(W15, W11, W3, 7); \
	STEP(W4, W0, C1, 9); STEP(W9, W5, C2, 9); STEP(W14, W10, M2, 9); STEP(W3, W15, M7, 9); \
	STEP(C1, W4, W12, 13); STEP(C2, W9, W1, 13); STEPM(M2, W14, W6, 13); STEPM(M7, W3, W11, 13); \
	STEP(W12, C1, W0, 18); STEP(W1, C2, W5, 18); STEPM(M2, W6, W10, 18); STEPM(M7, W11, W15, 18); \
	STEP(W0, W3, W1, 7); STEP(W5, W4, W6, 7); STEP(W10, W9, W11, 7); STEP(W15, W14, W12, 7); \
	STEP(W1, W0, M2, 9); STEP(W6, W5, M7, 9); STEP(W11, W10, C1, 9); STEP(W12, W15, C2, 9); \
	STEPM(M2, W1, W3, 13); STEPM(M7, W6, W4, 13); STEP(C1, W11, W9, 13); STEP(C2, W12, W14, 13); \
	STEPM(M2, W3, W0, 18); STEPM(M7, W4, W5, 18); STEP(W9, C1, W10, 18); STEP(W14, C2, W15, 18)

// XORIN: state ^= the 64-byte block at off(ptr), for ptr loaded from the
// frame slot at slot(SP). x2 and x7 stay with general registers and 32-bit
// accesses, which the renaming of stack slots covers.
#define XORIN(slot, off) \
	MOVQ slot(SP), T; \
	XORL (off+0)(T), W0; XORL (off+4)(T), W1; XORL (off+12)(T), W3; XORL (off+16)(T), W4; \
	XORL (off+20)(T), W5; XORL (off+24)(T), W6; XORL (off+32)(T), C1; XORL (off+36)(T), W9; \
	XORL (off+40)(T), W10; XORL (off+44)(T), W11; XORL (off+48)(T), W12; XORL (off+52)(T), C2; \
	XORL (off+56)(T), W14; XORL (off+60)(T), W15; \
	MOVL (off+8)(T), T; XORL T, 0(SP); \
	MOVQ slot(SP), T; MOVL (off+28)(T), T; XORL T, 4(SP)

// SALSA: state = Salsa20/8(state); it stays the state for the next block.
// The input is kept at 16(SP) for the feed-forward. Meanwhile the previous
// core's result, which is that input xor the block at in+inoff, is written
// to out+prevoff from vector registers, off the dependency chain (fewer
// stores at the core boundary than writing each word from its register).
#define SALSA(prevoff, inoff) \
	MOVL 0(SP), T; MOVL T, 24(SP); \
	MOVL 4(SP), T; MOVL T, 44(SP); \
	MOVL W0, 16(SP); MOVL W1, 20(SP); MOVL W3, 28(SP); MOVL W4, 32(SP); \
	MOVL W5, 36(SP); MOVL W6, 40(SP); MOVL C1, 48(SP); MOVL W9, 52(SP); \
	MOVL W10, 56(SP); MOVL W11, 60(SP); MOVL W12, 64(SP); MOVL C2, 68(SP); \
	MOVL W14, 72(SP); MOVL W15, 76(SP); \
	MOVQ 80(SP), T; \
	MOVOU (inoff+0)(T), X4; MOVOU (inoff+16)(T), X5; MOVOU (inoff+32)(T), X6; MOVOU (inoff+48)(T), X7; \
	MOVOU 16(SP), X0; MOVOU 32(SP), X1; MOVOU 48(SP), X2; MOVOU 64(SP), X3; \
	PXOR X4, X0; PXOR X5, X1; PXOR X6, X2; PXOR X7, X3; \
	MOVQ 88(SP), T; \
	MOVOU X0, (prevoff+0)(T); MOVOU X1, (prevoff+16)(T); MOVOU X2, (prevoff+32)(T); MOVOU X3, (prevoff+48)(T); \
	DOUBLEROUND; DOUBLEROUND; DOUBLEROUND; DOUBLEROUND; \
	ADDL 16(SP), W0; ADDL 20(SP), W1; ADDL 28(SP), W3; ADDL 32(SP), W4; \
	ADDL 36(SP), W5; ADDL 40(SP), W6; ADDL 48(SP), C1; ADDL 52(SP), W9; \
	ADDL 56(SP), W10; ADDL 60(SP), W11; ADDL 64(SP), W12; ADDL 68(SP), C2; \
	ADDL 72(SP), W14; ADDL 76(SP), W15; \
	MOVL 0(SP), T; ADDL 24(SP), T; MOVL T, 0(SP); \
	MOVL 4(SP), T; ADDL 44(SP), T; MOVL T, 4(SP)

// STORE: the state to out+off.
#define STORE(off) \
	MOVQ 88(SP), T; \
	MOVL W0, (off+0)(T); MOVL W1, (off+4)(T); MOVL W3, (off+12)(T); MOVL W4, (off+16)(T); \
	MOVL W5, (off+20)(T); MOVL W6, (off+24)(T); MOVL C1, (off+32)(T); MOVL W9, (off+36)(T); \
	MOVL W10, (off+40)(T); MOVL W11, (off+44)(T); MOVL W12, (off+48)(T); MOVL C2, (off+52)(T); \
	MOVL W14, (off+56)(T); MOVL W15, (off+60)(T); \
	MOVSS 0(SP), X0; MOVSS X0, (off+8)(T); \
	MOVSS 4(SP), X1; MOVSS X1, (off+28)(T)

// LOADLAST: state = the last 64-byte block at slot(SP).
#define LOADLAST(slot) \
	MOVQ slot(SP), T; \
	MOVL 960(T), W0; MOVL 964(T), W1; MOVL 972(T), W3; MOVL 976(T), W4; \
	MOVL 980(T), W5; MOVL 984(T), W6; MOVL 992(T), C1; MOVL 996(T), W9; \
	MOVL 1000(T), W10; MOVL 1004(T), W11; MOVL 1008(T), W12; MOVL 1012(T), C2; \
	MOVL 1016(T), W14; MOVL 1020(T), W15; \
	MOVSS 968(T), X0; MOVSS X0, 0(SP); \
	MOVSS 988(T), X1; MOVSS X1, 4(SP)

// BLOCKMIX: out = BlockMix(in) for in = 80(SP), out = 88(SP), which it
// advances. Even-numbered results go to the first half of out, odd ones to
// the second, as scrypt's BlockMix orders them: core 2p writes the result
// of core 2p-1 to out+448 (for p = 0 that is a stand-in, overwritten by
// core 15 later), core 2p+1 that of core 2p to out+0, and the last result
// is stored from registers after the loop.
#define BLOCKMIX(pair) \
	LOADLAST(80); \
	MOVQ $8, 96(SP); \
pair: \
	XORIN(80, 0); \
	SALSA(448, 0); \
	XORIN(80, 64); \
	SALSA(0, 64); \
	ADDQ $128, 80(SP); \
	ADDQ $64, 88(SP); \
	DECQ 96(SP); \
	JNZ pair; \
	STORE(448)

// XORV: x ^= v for the 64-byte blocks at off(80(SP)) and off(144(SP)), in
// vector registers, off the Salsa20 dependency chain.
#define XORV(off) \
	MOVQ 144(SP), T; \
	MOVOU (off+0)(T), X4; MOVOU (off+16)(T), X5; MOVOU (off+32)(T), X6; MOVOU (off+48)(T), X7; \
	MOVQ 80(SP), T; \
	MOVOU (off+0)(T), X0; MOVOU (off+16)(T), X1; MOVOU (off+32)(T), X2; MOVOU (off+48)(T), X3; \
	PXOR X4, X0; PXOR X5, X1; PXOR X6, X2; PXOR X7, X3; \
	MOVOU X0, (off+0)(T); MOVOU X1, (off+16)(T); MOVOU X2, (off+32)(T); MOVOU X3, (off+48)(T)

// BLOCKMIXV: BLOCKMIX of in xor v, for v = 144(SP), which it advances too.
// v is fresh from memory, and its 16 cache lines arrive one after another:
// each block is combined just ahead of the Salsa20 core that reads it, so
// that the first core starts as soon as the two lines it needs are in.
#define BLOCKMIXV(pair, last) \
	XORV(960); \
	XORV(0); \
	LOADLAST(80); \
	MOVQ $8, 96(SP); \
pair: \
	CMPQ 96(SP), $1; \
	JEQ last; \
	XORV(64); \
	XORV(128); \
last: \
	XORIN(80, 0); \
	SALSA(448, 0); \
	XORIN(80, 64); \
	SALSA(0, 64); \
	ADDQ $128, 80(SP); \
	ADDQ $128, 144(SP); \
	ADDQ $64, 88(SP); \
	DECQ 96(SP); \
	JNZ pair; \
	STORE(448)

// func fillScalar(v *uint32, k uintptr, last *uint32)
//
// For i in 0..k-1: BlockMix(v[i]) -> v[i+1], except that the last result
// goes to last.
TEXT ·fillScalar(SB), NOSPLIT, $160-24
	MOVQ v+0(FP), AX
	MOVQ AX, 104(SP)
	MOVQ k+8(FP), AX
	MOVQ AX, 112(SP)
	MOVQ last+16(FP), AX
	MOVQ AX, 120(SP)

fillloop:
	MOVQ 104(SP), AX
	MOVQ AX, 80(SP)
	LEAQ 1024(AX), BX
	MOVQ BX, 104(SP)
	CMPQ 112(SP), $1
	JNE  fillout
	MOVQ 120(SP), BX

fillout:
	MOVQ BX, 88(SP)
	BLOCKMIX(fillpair)
	DECQ 112(SP)
	JNZ  fillloop
	RET

// func mixScalar(x, y, v *uint32, mask, k uintptr)
//
// k times (k even): x ^= v[x[240] & mask]; y = BlockMix(x); swap x and y.
TEXT ·mixScalar(SB), NOSPLIT, $160-40
	MOVQ x+0(FP), AX
	MOVQ AX, 104(SP)
	MOVQ y+8(FP), AX
	MOVQ AX, 112(SP)
	MOVQ v+16(FP), AX
	MOVQ AX, 120(SP)
	MOVQ mask+24(FP), AX
	MOVQ AX, 128(SP)
	MOVQ k+32(FP), AX
	MOVQ AX, 136(SP)

mixloop:
	MOVQ 104(SP), SI
	MOVL 960(SI), AX
	ANDQ 128(SP), AX
	SHLQ $10, AX
	ADDQ 120(SP), AX

	// v[j] is almost always a cache (and TLB) miss, and nothing can be done
	// until it arrives: ask for all of its lines at once, the last one
	// (which BlockMix reads first) leading.
	PREFETCHT0 960(AX)
	PREFETCHT0 0(AX)
	PREFETCHT0 64(AX)
	PREFETCHT0 128(AX)
	PREFETCHT0 192(AX)
	PREFETCHT0 256(AX)
	PREFETCHT0 320(AX)
	PREFETCHT0 384(AX)
	PREFETCHT0 448(AX)
	PREFETCHT0 512(AX)
	PREFETCHT0 576(AX)
	PREFETCHT0 640(AX)
	PREFETCHT0 704(AX)
	PREFETCHT0 768(AX)
	PREFETCHT0 832(AX)
	PREFETCHT0 896(AX)
	MOVQ AX, 144(SP)
	MOVQ SI, 80(SP)
	MOVQ 112(SP), BX
	MOVQ BX, 88(SP)
	MOVQ BX, 104(SP)
	MOVQ SI, 112(SP)
	BLOCKMIXV(mixpair, mixlast)
	DECQ 136(SP)
	JNZ  mixloop
	RET
