# Configures, builds and runs examples/consumer against the test install prefix (cmake -P script).
execute_process(COMMAND ${CMAKE_COMMAND} -S ${SOURCE} -B ${BINARY} "-DCMAKE_PREFIX_PATH=${PREFIX}"
                        -DCMAKE_BUILD_TYPE=Release RESULT_VARIABLE result)
if(result)
  message(FATAL_ERROR "configuring the consumer failed")
endif()
execute_process(COMMAND ${CMAKE_COMMAND} --build ${BINARY} RESULT_VARIABLE result)
if(result)
  message(FATAL_ERROR "building the consumer failed")
endif()
execute_process(COMMAND ${BINARY}/consumer RESULT_VARIABLE result)
if(result)
  message(FATAL_ERROR "the consumer ran but failed")
endif()
