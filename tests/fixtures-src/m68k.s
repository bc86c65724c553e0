| m68k: exit(42). LLVM 16 cannot assemble m68k inline asm; GNU as can.
	.globl _start
_start:
	moveq #1, %d0
	moveq #42, %d1
	trap #0
