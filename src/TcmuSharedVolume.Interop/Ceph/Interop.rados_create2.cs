using System.Runtime.InteropServices;

namespace TcmuSharedVolume.Interop;

public static unsafe partial class LibRados
{
    /// <summary>name is the full entity name (client.admin).</summary>
    [LibraryImport(Library, EntryPoint = "rados_create2", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int rados_create2(nint* cluster, string clusterName, string name, ulong flags);
}
