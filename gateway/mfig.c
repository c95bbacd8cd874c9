/*
 * mfig.c - the master's figures in a page shared with its workers (see
 * mfig.h).
 */
#include "mfig.h"

#include <stddef.h>
#include <sys/mman.h>

struct mfig *
mfig_map(void)
{
	void *p = mmap(NULL, sizeof(struct mfig), PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	/* Anonymous pages are zero-filled: every figure starts at 0. */
	return p == MAP_FAILED ? NULL : p;
}

void
mfig_unmap(struct mfig *f)
{
	if (f != NULL)
		munmap(f, sizeof(*f));
}

void
mfig_add(struct mfig *f, enum mfig_what what)
{
	if (f != NULL)
		atomic_fetch_add_explicit(&f->v[what], 1, memory_order_relaxed);
}

uint64_t
mfig_get(const struct mfig *f, enum mfig_what what)
{
	return f == NULL
		   ? 0
		   : atomic_load_explicit(&f->v[what], memory_order_relaxed);
}
