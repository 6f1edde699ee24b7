// placeholder: being written
#include <boost/test/unit_test.hpp>
BOOST_AUTO_TEST_SUITE(toydata)
BOOST_AUTO_TEST_CASE(placeholder) { BOOST_TEST(1 + 1 == 2); }
BOOST_AUTO_TEST_SUITE_END()
