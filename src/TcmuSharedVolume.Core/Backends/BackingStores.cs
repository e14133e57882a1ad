namespace TcmuSharedVolume.Backends;

/// <summary>Opens the right store for a path: block device or (sparse) regular file.</summary>
public static class BackingStores
{
    /// <summary>Resolves the path safely (<see cref="BackingPath"/>) and opens what it names;
    /// a missing file is created (0600) when a size is given.</summary>
    public static IBackingStore Open(string path, BackingStoreOptions? options = null)
    {
        using var resolved = BackingPath.Resolve(path);
        return resolved.Open(options);
    }
}
