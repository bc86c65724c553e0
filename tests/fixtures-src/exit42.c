/* A freestanding program for every fixture architecture: exit(42) through the raw syscall,
 * so a test that runs it knows the instructions really executed. No libc, no startup files. */
void _start(void)
{
#if defined(__aarch64__)
	__asm__ volatile("mov x0, #42\n mov x8, #93\n svc #0");
#elif defined(__arm__)
	__asm__ volatile("mov r0, #42\n mov r7, #1\n svc #0");
#elif defined(__riscv)
	__asm__ volatile("li a0, 42\n li a7, 93\n ecall");
#elif defined(__s390x__)
	__asm__ volatile("lghi %r2, 42\n svc 1");
#elif defined(__powerpc__)
	__asm__ volatile("li 0, 1\n li 3, 42\n sc");
#elif defined(__x86_64__) && defined(__ILP32__)
	__asm__ volatile("mov $0x4000003c, %eax\n mov $42, %edi\n syscall");
#elif defined(__x86_64__) && defined(__FreeBSD__)
	__asm__ volatile("mov $1, %eax\n mov $42, %edi\n syscall");
#elif defined(__x86_64__)
	__asm__ volatile("mov $60, %eax\n mov $42, %edi\n syscall");
#elif defined(__i386__)
	__asm__ volatile("mov $1, %eax\n mov $42, %ebx\n int $0x80");
#elif defined(__mips__) && _MIPS_SIM == _ABIO32
	__asm__ volatile("li $2, 4001\n li $4, 42\n syscall");
#elif defined(__mips__) && _MIPS_SIM == _ABIN32
	__asm__ volatile("li $2, 6058\n li $4, 42\n syscall");
#elif defined(__mips__)
	__asm__ volatile("li $2, 5058\n li $4, 42\n syscall");
#elif defined(__sparc__) && defined(__arch64__)
	__asm__ volatile("mov 42, %o0\n mov 1, %g1\n ta 0x6d");
#elif defined(__sparc__)
	__asm__ volatile("mov 42, %o0\n mov 1, %g1\n ta 0x10");
#elif defined(__loongarch__)
	__asm__ volatile("li.w $a0, 42\n li.w $a7, 93\n syscall 0");
#endif
	__builtin_trap();
}

/* Mach-O and PE fixtures link this entry point instead. */
int main(void) { return 42; }
