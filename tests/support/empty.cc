// Keeps txc_test_support a valid library while support/ is small.
