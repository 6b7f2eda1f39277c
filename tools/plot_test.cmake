# CTest tools.plot: renders a tiny CSV with both chart kinds, then decodes each PNG (hybrid-plot info, libpng)
# and checks its signature and size. Run as: cmake -DPLOT=<hybrid-plot> -DDIR=<scratch dir> -P plot_test.cmake
file(REMOVE_RECURSE "${DIR}")
file(MAKE_DIRECTORY "${DIR}")
file(WRITE "${DIR}/metrics.csv" "step,loss,eval_loss,name,sd\n0,,10.4,a,0.5\n50,9.9,,b,1\n100,8.1,,\"c, quoted\",2\n150,7.5,7.2,d,\n")

function(run_ok)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${ARGN}\nexit ${rc}: ${out}${err}")
  endif()
  set(out "${out}" PARENT_SCOPE)
endfunction()

function(check_png file want)
  file(READ "${file}" head LIMIT 8 HEX)
  if(NOT head STREQUAL "89504e470d0a1a0a")
    message(FATAL_ERROR "${file}: no PNG signature (${head})")
  endif()
  run_ok("${PLOT}" info "${file}")
  string(STRIP "${out}" out)
  if(NOT out STREQUAL want)
    message(FATAL_ERROR "${file}: decoded as ${out}, expected ${want}")
  endif()
endfunction()

run_ok("${PLOT}" curve --csv "${DIR}/metrics.csv" --x step --y loss,eval_loss --out "${DIR}/curve.png" --title "t")
check_png("${DIR}/curve.png" "960x540")
run_ok("${PLOT}" bars --csv "${DIR}/metrics.csv" --label name --value loss --error sd --out "${DIR}/bars.png"
       --width 400 --height 200)
check_png("${DIR}/bars.png" "400x200")

# A missing column must fail with a message naming it.
execute_process(COMMAND "${PLOT}" curve --csv "${DIR}/metrics.csv" --x step --y nope --out "${DIR}/x.png"
                RESULT_VARIABLE rc ERROR_VARIABLE err)
if(rc EQUAL 0 OR NOT err MATCHES "no column \"nope\"")
  message(FATAL_ERROR "missing column not reported: exit ${rc}: ${err}")
endif()
