# no-service-starts.sh: sourced by the hack/install-*.sh scripts, which
# install Debian packages for the test servers without letting the packages
# start their own services. deny_service_starts makes invoke-rc.d refuse to
# start services (policy-rc.d exit 101), keeping any existing policy aside;
# restore_policy puts it back. The caller sets policy_owner to its own name.

policy=/usr/sbin/policy-rc.d
policy_backup=""
policy_ours=false

deny_service_starts() {
	if [[ -e $policy ]]; then
		policy_backup=$(mktemp "$policy.${policy_owner:-install}.XXXXXX")
		cp -p "$policy" "$policy_backup"
	fi
	policy_ours=true
	printf '#!/bin/sh\n# Written by %s; removed when it ends.\nexit 101\n' "${policy_owner:-an installer}" >"$policy"
	chmod 0755 "$policy"
}

restore_policy() {
	$policy_ours || return 0
	if [[ -n $policy_backup ]]; then
		mv -f "$policy_backup" "$policy"
	else
		rm -f "$policy"
	fi
	policy_ours=false
}
