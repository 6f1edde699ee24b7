#pragma once
// The error hierarchy of sdeflow (ARCHITECTURE.md, "Errors"): library code throws these with a message
// that names the file, dataset, option or sample involved; apps/ maps them to exit codes.
#include <stdexcept>
#include <string>

namespace sdeflow {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Bad files, arguments or data: the caller's input is wrong (exit status 2).
class InputError : public Error {
 public:
  using Error::Error;
};

// A numerical failure the caller asked to be strict about (exit status 1).
class NumericalError : public Error {
 public:
  using Error::Error;
};

// Reading or writing a file failed for a reason other than its content (exit status 1).
class IoError : public Error {
 public:
  using Error::Error;
};

}  // namespace sdeflow
