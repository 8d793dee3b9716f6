# Writes OUTPUT (a C++ source) from TEMPLATE with the git revision of SOURCE_DIR, at build time,
# so that a new commit changes `mailring --version` without re-running cmake. configure_file
# leaves OUTPUT untouched when nothing changed, so nothing is recompiled then.
#
#   cmake -DSOURCE_DIR=... -DTEMPLATE=... -DOUTPUT=... -DMAILRING_VERSION=...
#         -DURING_VERSION=... [-DGIT_REVISION=...] -P build_info.cmake
# GIT_REVISION, when given (a build from a source tarball), wins over git; without either the
# revision is "unknown". A checkout with uncommitted changes gets "-dirty".
if(NOT GIT_REVISION)
  set(GIT_REVISION "unknown")
  find_program(GIT_EXECUTABLE git)
  if(GIT_EXECUTABLE)
    execute_process(COMMAND "${GIT_EXECUTABLE}" -C "${SOURCE_DIR}" rev-parse --short=12 HEAD
                    OUTPUT_VARIABLE head RESULT_VARIABLE head_result
                    OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
    if(head_result EQUAL 0 AND head)
      set(GIT_REVISION "${head}")
      execute_process(COMMAND "${GIT_EXECUTABLE}" -C "${SOURCE_DIR}" diff --quiet HEAD --
                      RESULT_VARIABLE dirty_result ERROR_QUIET)
      if(NOT dirty_result EQUAL 0)
        string(APPEND GIT_REVISION "-dirty")
      endif()
    endif()
  endif()
endif()
configure_file("${TEMPLATE}" "${OUTPUT}" @ONLY)
