#include <boost/test/unit_test.hpp>
BOOST_AUTO_TEST_SUITE(brownian_tree)
BOOST_AUTO_TEST_CASE(placeholder) { BOOST_TEST(true); }
BOOST_AUTO_TEST_SUITE_END()
