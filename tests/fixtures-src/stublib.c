/* A shared library with one symbol: linked into the LIBRARY_MISSING fixtures, then left
 * out of the roots they run in, so the loader cannot find it. */
int binfmt_setup_stub(void) { return 42; }
