"""The benchmarks' confidence interval of a median (the sign test's).

Nothing here times anything: the interval is checked on made-up values.
"""

import math

import benchmarks
from nova import test


class TestMedianInterval(test.NoDBTestCase):

    def test_known_orders(self):
        # The sign test's 95% interval: 1st to 6th of 6 values (96.9%),
        # 6th to 15th of 20 (95.9%), as its tables give.
        self.assertEqual((2.5, 0, 5),
                         benchmarks.median_interval(range(6)))
        self.assertEqual((9.5, 5, 14),
                         benchmarks.median_interval(range(20)))

    def test_too_few_values_have_no_interval(self):
        mid, low, high = benchmarks.median_interval([3.0, 1.0, 2.0])
        self.assertEqual(2.0, mid)
        self.assertEqual((-math.inf, math.inf), (low, high))

    def test_more_pairs_than_a_float_can_count(self):
        # 2 ** 1024 is no float: a comparison capped at 2,000 pairs gets
        # there on a machine fast enough. The order is then the normal
        # approximation's, n / 2 - 1.96 * sqrt(n) / 2, within one.
        for n in (1024, 2000):
            mid, low, high = benchmarks.median_interval(range(n))
            k = low + 1
            self.assertEqual(n - k, high)
            self.assertLessEqual(
                abs(k - (n / 2 - 1.96 * math.sqrt(n) / 2)), 1.0, n)


class TestComparePairs(test.NoDBTestCase):
    """When sampling stops, on made-up pairs.

    No clock is involved but the seconds cap, set out of reach.
    """

    def _compare(self, ratios):
        return benchmarks.compare_pairs(
            lambda i: (ratios[i % len(ratios)], 1.0), goal=1.05,
            margin=0.05, max_pairs=60, max_seconds=3600)

    def test_narrow_interval_under_the_goal_stops_early(self):
        sampled = self._compare([1.03, 1.04])
        self.assertEqual('narrow', sampled.stopped)
        self.assertEqual(benchmarks.MIN_SAMPLES, sampled.pairs)
        self.assertEqual(benchmarks.PASS, sampled.status(1.05))

    def test_narrow_interval_holding_the_goal_samples_on(self):
        # Narrower than the margin, yet the goal lies inside it: more
        # pairs may settle it, so the budget is used.
        sampled = self._compare([1.04, 1.06])
        self.assertEqual('cap', sampled.stopped)
        self.assertEqual(60, sampled.pairs)
        self.assertEqual(benchmarks.INCONCLUSIVE, sampled.status(1.05))

    def test_far_from_the_goal_is_decided(self):
        sampled = self._compare([1.2, 1.5])
        self.assertEqual('decided', sampled.stopped)
        self.assertEqual(benchmarks.DECIDE_AFTER, sampled.pairs)
        self.assertEqual(benchmarks.MISS, sampled.status(1.05))
