// SPDX-License-Identifier: GPL-2.0-only
/* The program the exec benchmark runs: static, so no dynamic loader's opens and
 * mmaps are measured with the execve. */
int main(void)
{
	return 0;
}
