/*
 * presence_test.c - per-node connection counts by user
 * (bridge/presence.c) and the incremental changes it hands out.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "presence.h"

/* The registry's worker (slot, gen): the module keeps its state there. */
static struct worker *
W(uint32_t slot, uint32_t gen)
{
	static struct worker ws[32];
	static size_t n;

	for (size_t i = 0; i < n; i++) {
		if (ws[i].slot == slot && ws[i].gen == gen)
			return &ws[i];
	}
	assert_true(n < 32);
	ws[n].slot = slot;
	ws[n].gen = gen;
	return &ws[n++];
}

struct seen {
	char users[16][32];
	uint64_t conns[16];
	int n;
	int done;
};

static struct seen S;

static void
emit(void *arg, const char *user, size_t len, uint64_t conns)
{
	struct seen *s = arg;

	assert_true(s->n < 16);
	snprintf(
	    s->users[s->n], sizeof(s->users[s->n]), "%.*s", (int)len, user);
	s->conns[s->n++] = conns;
}

static void
done(void *arg)
{
	((struct seen *)arg)->done++;
}

static uint64_t
seen(const char *user)
{
	for (int i = 0; i < S.n; i++) {
		if (strcmp(S.users[i], user) == 0)
			return S.conns[i];
	}
	return UINT64_MAX;
}

static int
setup(void **state)
{
	memset(&S, 0, sizeof(S));
	*state = presence_new();
	return *state == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	presence_free(*state);
	return 0;
}

static void
events_change_the_node_totals(void **state)
{
	struct presence *p = *state;

	assert_int_equal(presence_event(p, W(1, 1), "alice", 5, 1), 0);
	assert_int_equal(presence_event(p, W(1, 1), "alice", 5, 1), 0);
	assert_int_equal(presence_event(p, W(2, 1), "alice", 5, 1), 0);
	assert_int_equal(presence_event(p, W(2, 1), "bob", 3, 1), 0);
	assert_int_equal(presence_connections(p), 4);
	assert_int_equal(presence_users(p), 2);
	presence_flush(p, emit, done, &S);
	assert_int_equal(S.n, 2);
	assert_int_equal(S.done, 1);
	assert_int_equal(seen("alice"), 3);
	assert_int_equal(seen("bob"), 1);
	S.n = 0;
	presence_flush(p, emit, NULL, &S);
	assert_int_equal(S.n, 0);
}

static void
a_user_at_zero_is_emitted_once_then_forgotten(void **state)
{
	struct presence *p = *state;

	presence_event(p, W(1, 1), "bob", 3, 1);
	presence_flush(p, emit, NULL, &S);
	presence_event(p, W(1, 1), "bob", 3, -1);
	S.n = 0;
	presence_flush(p, emit, NULL, &S);
	assert_int_equal(S.n, 1);
	assert_int_equal(seen("bob"), 0);
	assert_int_equal(presence_users(p), 0);
	assert_int_equal(presence_connections(p), 0);
	S.n = 0;
	presence_each(p, emit, &S);
	assert_int_equal(S.n, 0);
}

static void
bad_input_is_ignored(void **state)
{
	struct presence *p = *state;

	assert_int_equal(presence_event(p, W(1, 1), "has space", 9, 1), 0);
	assert_int_equal(presence_event(p, W(1, 1), NULL, 0, 1), 0);
	assert_int_equal(presence_event(p, W(1, 1), "ghost", 5, -1), 0);
	assert_int_equal(presence_event(p, W(7, 7), "ghost", 5, -1), 0);
	assert_int_equal(presence_connections(p), 0);
	presence_flush(p, emit, NULL, &S);
	assert_int_equal(S.n, 0);
}

static void
a_sync_replaces_the_workers_table(void **state)
{
	struct presence *p = *state;
	struct up_counter t[] = {
	    {{"carol", 5}, 2}, {{"dave", 4}, 0}, {{"bad id", 6}, 3}};

	presence_event(p, W(1, 1), "alice", 5, 1);
	presence_event(p, W(2, 1), "alice", 5, 1);
	presence_flush(p, emit, NULL, &S);
	assert_int_equal(presence_sync(p, W(1, 1), t, 3), 0);
	S.n = 0;
	presence_flush(p, emit, NULL, &S);
	assert_int_equal(seen("alice"), 1);
	assert_int_equal(seen("carol"), 2);
	assert_int_equal(seen("dave"), UINT64_MAX);
	assert_int_equal(presence_connections(p), 3);
}

static void
forgetting_a_worker_removes_its_connections(void **state)
{
	struct presence *p = *state;

	presence_event(p, W(1, 1), "alice", 5, 1);
	presence_event(p, W(1, 2), "alice", 5, 1);
	presence_event(p, W(1, 1), "bob", 3, 1);
	presence_flush(p, emit, NULL, &S);
	presence_forget(p, W(1, 1));
	presence_forget(p, W(9, 9));
	S.n = 0;
	presence_flush(p, emit, NULL, &S);
	assert_int_equal(seen("alice"), 1);
	assert_int_equal(seen("bob"), 0);
	S.n = 0;
	presence_each(p, emit, &S);
	assert_int_equal(S.n, 1);
	assert_int_equal(seen("alice"), 1);
}

/*
 * The user count is kept incrementally (stats ask for it several times a
 * second); a random walk of opens, closes, syncs and forgotten workers
 * must agree with a model that counts.
 */
static void
the_user_count_follows_a_random_walk(void **state)
{
	enum { SLOTS = 3, USERS = 12, STEPS = 20000 };
	struct presence *p = *state;
	static uint64_t model[SLOTS][USERS];
	char name[8];
	unsigned int seed = 42;

	memset(model, 0, sizeof(model));
	for (int step = 0; step < STEPS; step++) {
		int slot = rand_r(&seed) % SLOTS, u = rand_r(&seed) % USERS;
		int op = rand_r(&seed) % 100;
		size_t online = 0;
		uint64_t conns = 0;

		snprintf(name, sizeof(name), "u%d", u);
		if (op < 55) {
			presence_event(
			    p, W(slot + 1, 1), name, strlen(name), 1);
			model[slot][u]++;
		} else if (op < 97) {
			/* A close of an unknown connection is ignored. */
			presence_event(
			    p, W(slot + 1, 1), name, strlen(name), -1);
			if (model[slot][u] > 0)
				model[slot][u]--;
		} else if (op < 99) {
			struct up_counter c = {{name, strlen(name)}, 2};

			presence_sync(p, W(slot + 1, 1), &c, 1);
			memset(model[slot], 0, sizeof(model[slot]));
			model[slot][u] = 2;
		} else {
			presence_forget(p, W(slot + 1, 1));
			memset(model[slot], 0, sizeof(model[slot]));
		}
		if (step % 7 == 0) {
			S.n = 0;
			presence_flush(p, emit, NULL, &S);
		}
		for (int i = 0; i < USERS; i++) {
			uint64_t t = 0;

			for (int k = 0; k < SLOTS; k++)
				t += model[k][i];
			online += t > 0;
			conns += t;
		}
		assert_int_equal(presence_users(p), online);
		assert_int_equal(presence_connections(p), conns);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(
		events_change_the_node_totals, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		a_user_at_zero_is_emitted_once_then_forgotten, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		bad_input_is_ignored, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		a_sync_replaces_the_workers_table, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		forgetting_a_worker_removes_its_connections, setup, teardown),
	    cmocka_unit_test_setup_teardown(
		the_user_count_follows_a_random_walk, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
