/* Programs that need more than their architecture's baseline: one instruction of a later
 * level, then exit(42) through the raw syscall (no libc). Built by scripts/fixtures.sh:
 *   NEED_POWER10  ppc64le, `pli` (a prefixed instruction, Power ISA 3.1)
 *   NEED_RVV      riscv64, `vsetvli` (the V extension); -march=rv64gcv records it in
 *                 Tag_RISCV_arch
 *   NEED_X86_V4   amd64, one AVX-512 instruction; the link marks GNU_PROPERTY_X86_ISA_1_NEEDED
 *   SHOW_EUID     arm64, exit(geteuid()): what a setuid program runs as */
void _start(void)
{
#if defined(NEED_POWER10)
	__asm__ volatile("pli 3, 7\n li 0, 1\n li 3, 42\n sc");
#elif defined(NEED_RVV)
	__asm__ volatile("vsetvli t0, zero, e32, m1, ta, ma\n li a0, 42\n li a7, 93\n ecall");
#elif defined(NEED_X86_V4)
	__asm__ volatile("vpxord %zmm0, %zmm0, %zmm0\n mov $60, %eax\n mov $42, %edi\n syscall");
#elif defined(SHOW_EUID)
	__asm__ volatile("mov x8, #175\n svc #0\n mov x8, #93\n svc #0");
#endif
	__builtin_trap();
}
