# wstool fish completion, generated from the Click tree by `wstool completion fish`
# (or `python -m wstool.cli.completion`); do not edit. Install: README, Shell completion.
function _wstool_completion;
    set -l response (env _WSTOOL_COMPLETE=fish_complete COMP_WORDS=(commandline -cp) COMP_CWORD=(commandline -t) wstool);

    for i in (seq 1 3 (count $response));
        set -l kind $response[$i];
        set -l value $response[(math $i + 1)];
        set -l help $response[(math $i + 2)];
        if test "$kind" = dir;
            __fish_complete_directories $value;
        else if test "$kind" = file;
            __fish_complete_path $value;
        else if test "$kind" = plain;
            if test "$help" != _;
                printf '%s\t%s\n' $value $help;
            else;
                printf '%s\n' $value;
            end;
        end;
    end;
end;

complete --no-files --command wstool --arguments "(_wstool_completion)";
