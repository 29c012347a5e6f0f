# Install rules: `cmake --install build [--prefix DIR]`, and what `cpack -G DEB` packages
# (CPack installs with the prefix /usr into its staging directory through DESTDIR).
#
#   heartbeatd                      -> ${prefix}/bin
#   README.md, NOTICE, docs/*.md    -> ${prefix}/share/doc/heartbeatd
#   docs/heartbeatd.8, docs/heartbeatctl.1
#                                   -> ${prefix}/share/man/man{8,1}, gzipped
#   (heartbeatctl: ctl/CMakeLists.txt; the copyright file, changelog.Debian.gz and the
#   lintian overrides: cmake/package.cmake)
#   examples/heartbeatd.yaml        -> /etc/heartbeatd/heartbeatd.yaml   (prefix /usr)
#                                      ${prefix}/etc/heartbeatd/...      (any other prefix)
#   examples/systemd/heartbeatd.service
#                                   -> /lib/systemd/system               (prefix /usr)
#                                      ${prefix}/lib/systemd/system      (any other prefix)
#
# The configuration and the unit are the two files that do not live under the prefix when
# the prefix is /usr: Debian keeps configuration in /etc (GNUInstallDirs' own rule for
# /usr), and Debian 12 ships units in /lib/systemd/system (`pkg-config
# --variable=systemdsystemunitdir systemd`; usr-merge moves them only after bookworm).
# Their place is decided when installing, from the prefix in force then, not at configure
# time: a tree configured for /usr must still install wholly inside DIR with
# `--prefix DIR`, and `cpack` must put them in /etc and /lib whatever the build was
# configured with. For a prefix other than /usr the unit's paths (/usr/bin/heartbeatd,
# /etc/heartbeatd/) are rewritten to that prefix, so that e.g. a /usr/local install is a
# working unit too (systemd also reads /usr/local/lib/systemd/system).
include(GNUInstallDirs)

install(TARGETS heartbeatd RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
# A stripped install (`cmake --install --strip`, and cpack: CPACK_STRIP_FILES) also drops
# the .comment section (compiler version strings, no use at run time), as Debian's dh_strip
# does; lintian reports binary-has-unneeded-section otherwise. heartbeatctl's install rule
# (ctl/) comes earlier, so both programs are in place by now.
string(CONFIGURE [[
  if(CMAKE_INSTALL_DO_STRIP)
    foreach(_hb_program heartbeatd heartbeatctl)
      set(_hb_path "$ENV{DESTDIR}${CMAKE_INSTALL_PREFIX}/@CMAKE_INSTALL_BINDIR@/${_hb_program}")
      execute_process(COMMAND "@CMAKE_STRIP@" --remove-section=.comment "${_hb_path}"
                      RESULT_VARIABLE _hb_result)
      if(NOT _hb_result EQUAL 0)
        message(FATAL_ERROR "strip --remove-section=.comment ${_hb_path} failed")
      endif()
    endforeach()
  endif()
]] HEARTBEATD_STRIP_CODE @ONLY)
install(CODE "${HEARTBEATD_STRIP_CODE}")

file(GLOB HEARTBEATD_DOCS CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/docs/*.md)
install(FILES ${PROJECT_SOURCE_DIR}/README.md ${PROJECT_SOURCE_DIR}/NOTICE ${HEARTBEATD_DOCS}
        DESTINATION ${CMAKE_INSTALL_DOCDIR})

# hb_install_gzipped(SOURCE DESTINATION [AS NAME]): installs SOURCE compressed, as
# DESTINATION/NAME (default: SOURCE's name plus .gz), the way Debian ships man pages and
# changelogs. gzip -9n: best compression, and neither the file name nor a timestamp in the
# header, so the same source always gives the same bytes (reproducible packages; lintian
# checks both). Compressed at build time into ${PROJECT_BINARY_DIR}/gzipped, again whenever
# SOURCE changes.
function(hb_install_gzipped source destination)
  cmake_parse_arguments(PARSE_ARGV 2 arg "" "AS" "")
  get_filename_component(name "${source}" NAME)
  if(NOT arg_AS)
    set(arg_AS "${name}.gz")
  endif()
  set(output "${PROJECT_BINARY_DIR}/gzipped/${arg_AS}")
  add_custom_command(
    OUTPUT "${output}"
    COMMAND sh -c "gzip -9n <\"$1\" >\"$2\"" sh "${source}" "${output}"
    DEPENDS "${source}"
    COMMENT "gzip -9n ${name} -> ${arg_AS}"
    VERBATIM)
  string(MAKE_C_IDENTIFIER "gzip_${arg_AS}" target)
  add_custom_target(${target} ALL DEPENDS "${output}")
  install(FILES "${output}" DESTINATION "${destination}")
endfunction()
file(MAKE_DIRECTORY ${PROJECT_BINARY_DIR}/gzipped)

hb_install_gzipped(${PROJECT_SOURCE_DIR}/docs/heartbeatd.8 ${CMAKE_INSTALL_MANDIR}/man8)
hb_install_gzipped(${PROJECT_SOURCE_DIR}/docs/heartbeatctl.1 ${CMAKE_INSTALL_MANDIR}/man1)

set(HEARTBEATD_INSTALL_SOURCE_DIR ${PROJECT_SOURCE_DIR})
set(HEARTBEATD_INSTALL_STAGING_DIR ${PROJECT_BINARY_DIR}/install-staging)
string(CONFIGURE [[
  set(_hb_src "@HEARTBEATD_INSTALL_SOURCE_DIR@")
  set(_hb_staging "@HEARTBEATD_INSTALL_STAGING_DIR@")
  if(CMAKE_INSTALL_PREFIX STREQUAL "/usr" OR CMAKE_INSTALL_PREFIX STREQUAL "/usr/")
    set(_hb_etc "/etc/heartbeatd")
    set(_hb_unitdir "/lib/systemd/system")
    set(_hb_unit "${_hb_src}/examples/systemd/heartbeatd.service")
  else()
    string(REGEX REPLACE "/+$" "" _hb_prefix "${CMAKE_INSTALL_PREFIX}")
    set(_hb_etc "${_hb_prefix}/etc/heartbeatd")
    set(_hb_unitdir "${_hb_prefix}/lib/systemd/system")
    file(READ "${_hb_src}/examples/systemd/heartbeatd.service" _hb_text)
    string(REPLACE "/usr/bin/heartbeatd" "${_hb_prefix}/bin/heartbeatd" _hb_text "${_hb_text}")
    string(REPLACE "/etc/heartbeatd/" "${_hb_etc}/" _hb_text "${_hb_text}")
    string(REPLACE "/usr/share/doc/heartbeatd/" "${_hb_prefix}/share/doc/heartbeatd/"
           _hb_text "${_hb_text}")
    set(_hb_unit "${_hb_staging}/heartbeatd.service")
    file(WRITE "${_hb_unit}" "${_hb_text}")
  endif()
  # file(INSTALL) applies $DESTDIR to these absolute paths, and records them in
  # install_manifest.txt like the other rules.
  file(INSTALL DESTINATION "${_hb_etc}" TYPE FILE
       PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ
       FILES "${_hb_src}/examples/heartbeatd.yaml")
  file(INSTALL DESTINATION "${_hb_unitdir}" TYPE FILE
       PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ
       FILES "${_hb_unit}")
]] HEARTBEATD_INSTALL_CODE @ONLY)
install(CODE "${HEARTBEATD_INSTALL_CODE}")
