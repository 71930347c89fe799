# apt-turn.sh, sourced by the install scripts: apt_turn waits until no
# other of them is installing. go test runs the test servers' packages in
# parallel, so two may install at once: apt and dpkg take one at a time, and
# policy-rc.d is shared. The lock is held until the script exits. Other apt
# users are waited for by apt_get, which waits up to 10 minutes for dpkg's
# lock.

apt_turn() {
	exec 9>/tmp/dify-upgrade-operator-install.lock
	flock 9
}

apt_get() {
	apt-get -o DPkg::Lock::Timeout=600 "$@"
}
