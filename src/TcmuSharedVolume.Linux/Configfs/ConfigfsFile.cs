namespace TcmuSharedVolume.Linux.Configfs;

/// <summary>
/// Reading and writing configfs/sysfs attribute files. A write is one pwrite at offset 0, because
/// the kernel parses each write(2) as a whole value; reads return null when the attribute is absent
/// or the kernel refuses it (e.g. ENODEV from tcm_loop's <c>nexus</c> when there is none).
/// </summary>
internal static class ConfigfsFile
{
    public static string? Read(string path)
    {
        try { return File.ReadAllText(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return null; }
    }

    /// <summary>The first line without its newline, or null.</summary>
    public static string? ReadLine(string path)
    {
        var text = Read(path);
        if (text is null) return null;
        int nl = text.IndexOf('\n');
        return (nl < 0 ? text : text[..nl]).Trim();
    }

    public static long? ReadLong(string path)
    {
        var line = ReadLine(path);
        if (line is null) return null;
        if (line.StartsWith("0x", StringComparison.OrdinalIgnoreCase))
            return long.TryParse(line.AsSpan(2), System.Globalization.NumberStyles.AllowHexSpecifier, null, out var h) ? h : null;
        return long.TryParse(line, System.Globalization.NumberStyles.AllowLeadingSign, null, out var v) ? v : null;
    }

    /// <summary>
    /// Writes the value in one call; throws <see cref="IOException"/> with the kernel's errno text.
    /// O_TRUNC, like a shell's <c>echo 1 &gt; attr</c>: configfs ignores it, a plain file needs it.
    /// </summary>
    public static void Write(string path, string value)
    {
        try
        {
            using var handle = File.OpenHandle(path, FileMode.Truncate, FileAccess.Write);
            RandomAccess.Write(handle, System.Text.Encoding.ASCII.GetBytes(value), 0);
        }
        catch (UnauthorizedAccessException e)
        {
            throw new IOException($"{path}: {e.Message}", e);
        }
    }

    /// <summary>The directory a relative or absolute symlink points at, lexically normalised (configfs links are relative).</summary>
    public static string? LinkTarget(string linkPath)
    {
        string? target;
        try { target = new FileInfo(linkPath).LinkTarget; }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return null; }
        if (target is null) return null;
        var dir = Path.GetDirectoryName(linkPath)!;
        return Path.TrimEndingDirectorySeparator(Path.GetFullPath(Path.Combine(dir, target)));
    }

    /// <summary>Symlinks directly inside a directory.</summary>
    public static IEnumerable<string> Links(string dir)
    {
        if (!Directory.Exists(dir)) yield break;
        foreach (var entry in Directory.EnumerateFileSystemEntries(dir))
        {
            FileSystemInfo info = new FileInfo(entry);
            if (info.LinkTarget is not null) yield return entry;
        }
    }

    /// <summary>Real subdirectories (not symlinks) whose name starts with the prefix, in name order.</summary>
    public static IEnumerable<string> Dirs(string dir, string prefix = "")
    {
        if (!Directory.Exists(dir)) return [];
        return Directory.EnumerateDirectories(dir)
            .Where(d => Path.GetFileName(d).StartsWith(prefix, StringComparison.Ordinal) && new DirectoryInfo(d).LinkTarget is null)
            .Order(StringComparer.Ordinal);
    }
}
