# wstool bash completion, generated from the Click tree by `wstool completion bash`
# (or `python -m wstool.cli.completion`); do not edit. Install: README, Shell completion.
_wstool_completion() {
    local IFS=$'\n'
    local response

    response=$(env COMP_WORDS="${COMP_WORDS[*]}" COMP_CWORD=$COMP_CWORD _WSTOOL_COMPLETE=bash_complete $1)

    for completion in $response; do
        IFS=',' read type value <<< "$completion"

        if [[ $type == 'dir' ]]; then
            COMPREPLY=()
            compopt -o dirnames
        elif [[ $type == 'file' ]]; then
            COMPREPLY=()
            compopt -o default
        elif [[ $type == 'plain' ]]; then
            COMPREPLY+=($value)
        fi
    done

    return 0
}

_wstool_completion_setup() {
    complete -o nosort -F _wstool_completion wstool
}

_wstool_completion_setup;
