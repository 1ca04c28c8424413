// SPDX-License-Identifier: GPL-2.0-only
/*
 * Review R1: a UCX other than the one libmapwatch-ucx knows.  Preloaded
 * after the shim, this ucp_get_version() is the one the shim finds next
 * (RTLD_NEXT) and says 1.17.0, the release that gave ucs_rcache_get an
 * alignment argument: the shim must turn itself off and still forward
 * every call to the real UCX.
 */
void ucp_get_version(unsigned int *major, unsigned int *minor, unsigned int *release);

void ucp_get_version(unsigned int *major, unsigned int *minor, unsigned int *release)
{
	*major = 1;
	*minor = 17;
	*release = 0;
}
