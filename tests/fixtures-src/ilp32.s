// arm64 ILP32: exit(42). GNU as only: clang has no ILP32 ELF target.
	.globl _start
_start:
	mov w0, #42
	mov w8, #93
	svc #0
