namespace TcmuSharedVolume.Cli;

/// <summary>
/// The CHAP credentials of one initiator's ACL: the name and secret the initiator must answer
/// with, and optionally (mutual CHAP) the name and secret the target answers with, so that the
/// initiator knows it talks to the real target.
/// </summary>
public sealed record ChapCredential(string Initiator, string UserId, string Secret, string? MutualUserId, string? MutualSecret)
{
    public bool Mutual => MutualUserId is not null;

    // The secrets never appear in a string made of this record (exceptions, logs, test output).
    public override string ToString() => $"CHAP for {Initiator} (user {UserId}{(Mutual ? $", mutual user {MutualUserId}" : "")})";
}

/// <summary>
/// Reads CHAP secrets from a file (or stdin), one initiator a line:
/// <c>INITIATOR_IQN USER SECRET [MUTUAL_USER MUTUAL_SECRET]</c>; blank lines and lines starting
/// with '#' are skipped. Secrets never come from the command line (they would be readable by
/// every local user in /proc/PID/cmdline), and no error message quotes a secret.
/// </summary>
public static class ChapSecrets
{
    /// <summary>LIO keeps each CHAP value in a 256-byte buffer, NUL included.</summary>
    public const int MaxLength = 255;

    /// <summary>
    /// CHAP over an unencrypted link can be attacked offline with a dictionary; RFC 3720's CHAP
    /// considerations ask for secrets that resist it, and the Microsoft initiator refuses secrets
    /// shorter than 12 bytes, so this is the floor.
    /// </summary>
    public const int MinSecretLength = 12;

    private const UnixFileMode GroupOrOther =
        UnixFileMode.GroupRead | UnixFileMode.GroupWrite | UnixFileMode.GroupExecute |
        UnixFileMode.OtherRead | UnixFileMode.OtherWrite | UnixFileMode.OtherExecute;

    /// <summary>Reads <paramref name="source"/> ("-" is <paramref name="stdin"/>); keyed by initiator name.</summary>
    public static IReadOnlyDictionary<string, ChapCredential> Load(string source, TextReader stdin)
    {
        if (source == "-") return Parse(stdin, "--chap-secrets (stdin)");
        FileStream file;
        try
        {
            file = new FileStream(source, FileMode.Open, FileAccess.Read);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new UsageException($"--chap-secrets {source}: {e.Message}");
        }
        using (file)
        {
            // Checked on the opened file, so a file swapped after the check is not the one read.
            var mode = OperatingSystem.IsWindows() ? default : File.GetUnixFileMode(file.SafeFileHandle);
            if ((mode & GroupOrOther) != 0)
                throw new UsageException(
                    $"--chap-secrets {source} may be read or written by group or others (mode {Convert.ToString((int)mode, 8).PadLeft(4, '0')}); chmod 600 it");
            using var reader = new StreamReader(file);
            return Parse(reader, $"--chap-secrets {source}");
        }
    }

    public static IReadOnlyDictionary<string, ChapCredential> Parse(TextReader reader, string what)
    {
        var result = new Dictionary<string, ChapCredential>(StringComparer.Ordinal);
        int number = 0;
        for (string? line = reader.ReadLine(); line is not null; line = reader.ReadLine())
        {
            number++;
            var trimmed = line.Trim();
            if (trimmed.Length == 0 || trimmed[0] == '#') continue;
            string where = $"{what} line {number}";
            var words = trimmed.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
            if (words.Length is not (3 or 5))
                throw new UsageException($"{where}: expected INITIATOR_IQN USER SECRET [MUTUAL_USER MUTUAL_SECRET], got {words.Length} field(s)");
            string initiator;
            try
            {
                initiator = Volumes.CheckIscsiName(words[0], "initiator");
            }
            catch (UsageException e)
            {
                throw new UsageException($"{where}: {e.Message}");
            }
            CheckValue(words[1], "USER", where);
            CheckSecret(words[2], "SECRET", where);
            string? mutualUser = null, mutualSecret = null;
            if (words.Length == 5)
            {
                mutualUser = words[3];
                mutualSecret = words[4];
                CheckValue(mutualUser, "MUTUAL_USER", where);
                CheckSecret(mutualSecret, "MUTUAL_SECRET", where);
                // RFC 3720, CHAP considerations: a secret that authenticates an initiator must not
                // also authenticate a target, or a rogue target can reflect the initiator's own
                // challenge back at it and learn the answer.
                if (mutualSecret == words[2])
                    throw new UsageException($"{where}: MUTUAL_SECRET must differ from SECRET");
            }
            if (!result.TryAdd(initiator, new ChapCredential(initiator, words[1], words[2], mutualUser, mutualSecret)))
                throw new UsageException($"{where}: initiator {initiator} has credentials on an earlier line too");
        }
        if (result.Count == 0) throw new UsageException($"{what} holds no credentials");
        return result;
    }

    private static void CheckValue(string value, string field, string where)
    {
        if (System.Text.Encoding.UTF8.GetByteCount(value) > MaxLength) throw new UsageException($"{where}: {field} is longer than {MaxLength} bytes");
        // LIO reads a value starting with "NULL" as "no credential" and would silently drop it.
        if (value.StartsWith("NULL", StringComparison.Ordinal)) throw new UsageException($"{where}: {field} may not start with NULL");
        if (value.Any(char.IsControl)) throw new UsageException($"{where}: {field} holds a control character");
    }

    private static void CheckSecret(string value, string field, string where)
    {
        CheckValue(value, field, where);
        if (System.Text.Encoding.UTF8.GetByteCount(value) < MinSecretLength)
            throw new UsageException($"{where}: {field} is shorter than {MinSecretLength} bytes");
    }
}
