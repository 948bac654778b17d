# bash completion for umacvlan(8): the ip-shaped grammar of `umacvlan help`.
#   umacvlan [ OPTIONS ] link { add | set | del | show | help } ...
#   umacvlan { daemon | explain | lab | config | reload | capture | monitor | help } ...

_umacvlan_devices() {
    # The devices of the namespace given with -n/-netns, else ours.
    if [ -n "$1" ]; then
        ip -n "$1" -o link show 2>/dev/null | awk -F': ' '{ sub(/@.*/, "", $2); print $2 }'
    else
        command ls /sys/class/net 2>/dev/null
    fi
}

_umacvlan_files() {
    compopt -o filenames 2>/dev/null
    COMPREPLY=($(compgen -f -- "$cur"))
}

_umacvlan() {
    # Plain COMP_WORDS: no need for the bash-completion package.
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]}
    local words=("${COMP_WORDS[@]}") cword=$COMP_CWORD

    local modes="private vepa bridge passthru source"
    local topics="modes private vepa bridge passthru source explain lab cni daemon config capture monitor"
    local i=1 object="" netns=""
    # The global options come before the object (one dash or two, as with ip).
    while [ "$i" -lt "$cword" ]; do
        case "${words[i]}" in
            -n | -netns | --netns) netns=${words[i + 1]}; i=$((i + 2)) ;;
            --socket | -socket) i=$((i + 2)) ;;
            -*) i=$((i + 1)) ;;
            *) object=${words[i]}; break ;;
        esac
    done

    if [ -z "$object" ]; then
        case "$prev" in
            -n | -netns | --netns)
                COMPREPLY=($(compgen -W "$(ip netns list 2>/dev/null | awk '{print $1}')" -- "$cur"))
                return ;;
            --socket | -socket) _umacvlan_files; return ;;
        esac
        if [[ "$cur" == -* ]]; then
            COMPREPLY=($(compgen -W "-V -Version -s -stats -d -details -j -json -p -pretty
                -n -netns --socket --no-start -h -help" -- "$cur"))
        else
            COMPREPLY=($(compgen -W "link daemon help explain lab config reload capture monitor" -- "$cur"))
        fi
        return
    fi

    case "$object" in
        help)
            [ "$cword" -eq $((i + 1)) ] && COMPREPLY=($(compgen -W "$topics" -- "$cur"))
            return ;;
        daemon)
            case "$prev" in
                --socket | --state | --log-file | --netns | --config) _umacvlan_files; return ;;
                --tap-io) COMPREPLY=($(compgen -W "auto uring syscalls" -- "$cur")); return ;;
                --steer) COMPREPLY=($(compgen -W "adaptive flow" -- "$cur")); return ;;
                --workers | --poll-us | --max-devices | --max-sources | --idle-exit) return ;;
            esac
            COMPREPLY=($(compgen -W "--socket --state --log-file --netns --workers --tap-io
                --poll-us --steer --max-devices --max-sources --idle-exit --cleanup --foreground
                --config" -- "$cur"))
            return ;;
        config)
            if [ "$cword" -eq $((i + 1)) ]; then
                COMPREPLY=($(compgen -W "check apply dump help" -- "$cur"))
            elif [ "$cword" -eq $((i + 2)) ] && [ "$prev" != dump ]; then
                _umacvlan_files
            fi
            return ;;
        capture)
            case "$prev" in
                -w) _umacvlan_files; return ;;
                -c) return ;;
                dev) COMPREPLY=($(compgen -W "$(ls /sys/class/net 2>/dev/null)" -- "$cur")); return ;;
                port) COMPREPLY=($(compgen -W "$(ls /sys/class/net 2>/dev/null)" -- "$cur")); return ;;
            esac
            COMPREPLY=($(compgen -W "dev port -w -c help" -- "$cur"))
            return ;;
        monitor)
            [ "$prev" = -c ] && return
            COMPREPLY=($(compgen -W "all link port refused drops -c help" -- "$cur"))
            return ;;
        lab)
            case "$prev" in
                --mode) COMPREPLY=($(compgen -W "$modes" -- "$cur")); return ;;
                --svg) _umacvlan_files; return ;;
            esac
            COMPREPLY=($(compgen -W "--mode --with-kernel --keep --down --no-drawbacks --svg" -- "$cur"))
            return ;;
        explain)
            case "$prev" in
                dev | lower) COMPREPLY=($(compgen -W "$(_umacvlan_devices "$netns")" -- "$cur")); return ;;
                --port | from | to | src) return ;;
            esac
            COMPREPLY=($(compgen -W "dev from to src lower --port help" -- "$cur"))
            return ;;
        link) ;;
        *) return ;;
    esac

    # umacvlan ... link COMMAND ...
    if [ "$cword" -eq $((i + 1)) ]; then
        COMPREPLY=($(compgen -W "add set del delete show list lst help" -- "$cur"))
        return
    fi
    local command=${words[i + 1]}
    # macaddr { add | del } LLADDR, macaddr set [ LLADDR ... ]: addresses.
    [ "${words[cword - 2]}" = macaddr ] && [ "$prev" != flush ] && return
    case "$prev" in
        link | dev) COMPREPLY=($(compgen -W "$(_umacvlan_devices "$netns")" -- "$cur")); return ;;
        type) COMPREPLY=($(compgen -W "macvlan" -- "$cur")); return ;;
        mode) COMPREPLY=($(compgen -W "$modes" -- "$cur")); return ;;
        flag) COMPREPLY=($(compgen -W "null nopromisc nodst" -- "$cur")); return ;;
        macaddr) COMPREPLY=($(compgen -W "add del set flush" -- "$cur")); return ;;
        spoofchk | hostaccess | macnat) COMPREPLY=($(compgen -W "on off" -- "$cur")); return ;;
        name | address | mtu | bcqueuelen | bclim | macnat_ageing) return ;;
    esac
    local macvlan=""
    [[ " ${words[*]:i:cword-i} " == *" type macvlan "* ]] &&
        macvlan="mode flag nopromisc nodst bcqueuelen bclim macaddr spoofchk hostaccess
            macnat macnat_ageing"
    case "$command" in
        add)
            COMPREPLY=($(compgen -W "link name type address mtu up down $macvlan" -- "$cur")) ;;
        set)
            COMPREPLY=($(compgen -W "dev $(_umacvlan_devices "$netns") type address mtu up down
                $macvlan" -- "$cur")) ;;
        del | delete)
            COMPREPLY=($(compgen -W "dev $(_umacvlan_devices "$netns")" -- "$cur")) ;;
        show | list | lst)
            COMPREPLY=($(compgen -W "dev type $(_umacvlan_devices "$netns")" -- "$cur")) ;;
        help)
            COMPREPLY=($(compgen -W "macvlan" -- "$cur")) ;;
    esac
}
complete -F _umacvlan umacvlan
