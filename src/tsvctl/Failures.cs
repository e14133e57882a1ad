namespace TcmuSharedVolume.Cli;

/// <summary>The command line is wrong: exit code 2.</summary>
public sealed class UsageException(string message) : Exception(message);

/// <summary>The operation failed: exit code 1. The message is the one line the user sees.</summary>
public sealed class CliFailure(string message) : Exception(message);
